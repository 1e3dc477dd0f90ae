"""The store build's parallel stages: cleaning and encoding batches of documents in processes.

The functions a worker runs are module-level, so spawned processes find them by name.
"""
import collections
import concurrent.futures
import multiprocessing
import os
from typing import Iterable, Iterator

import numpy as np

from . import text
from . import tokenizer as tokenizer_lib

POOL_AFTER_CHARS = 4 << 20  # worker processes start only for corpora larger than this

_worker = {}  # per worker process: what its initializer loaded


def init_cleaner() -> None:
  text.sentence_splitter()  # read the tables once per worker, before the first batch


def clean_batch(docs: list[str], options: dict) -> list[str]:
  return [text.clean(d, **options) for d in docs]


def init_encoder(tokenizer_path: str) -> None:
  _worker["tokenizer"], _worker["encoder"] = tokenizer_lib.load(tokenizer_path), None


def encode_batch(docs: list[str], dtype: str) -> list[np.ndarray]:
  if _worker.get("encoder") is None or _worker["encoder"].dtype != dtype:
    _worker["encoder"] = tokenizer_lib.Encoder(_worker["tokenizer"], dtype)  # keeps its cache
  return _worker["encoder"](docs)


def encode_sentences_batch(docs: list[str], dtype: str) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per document, (its ids, its sentences' token counts): each line of a document cleaned with
  split_sentences is one sentence, encoded on its own (data.pack="sentences")."""
  lines = [d.split("\n") for d in docs]
  ids = encode_batch([s for ls in lines for s in ls], dtype)
  out, i = [], 0
  for ls in lines:
    part, i = ids[i:i + len(ls)], i + len(ls)
    out.append((np.concatenate(part), np.array([len(p) for p in part], np.int64)))
  return out


class Workers:
  """Runs fn(batch, *args) over batches, results in order: inline at first, then (past
  POOL_AFTER_CHARS, with more than one worker) in spawned processes with a bounded number of
  batches in flight, so memory does not grow with the corpus. Spawned, not forked: the parent
  may already run JAX threads. Processes rather than threads, because the clean-up and the
  encoder's chunk lookups are Python, which holds the GIL."""

  def __init__(self, workers: int, fn, args: tuple, init, initargs: tuple):
    self.workers = workers or os.cpu_count() or 1
    self.fn, self.args, self.init, self.initargs = fn, args, init, initargs
    self.pool, self.seen_chars, self.ready = None, 0, False

  def map(self, batches: Iterable[list[str]]) -> Iterator[tuple[list[str], list]]:
    pending = collections.deque()
    for batch in batches:
      if self.pool is None and self.workers > 1 and self.seen_chars > POOL_AFTER_CHARS:
        self.pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=self.init, initargs=self.initargs)
      self.seen_chars += sum(map(len, batch))
      if self.pool is None:
        if not self.ready:  # this process works inline: run the initializer here once
          self.init(*self.initargs)
          self.ready = True
        yield batch, self.fn(batch, *self.args)
        continue
      pending.append((batch, self.pool.submit(self.fn, batch, *self.args)))
      if len(pending) >= 2 * self.workers:
        b, f = pending.popleft()
        yield b, f.result()
    while pending:
      b, f = pending.popleft()
      yield b, f.result()

  def close(self) -> None:
    if self.pool is not None:
      self.pool.shutdown(cancel_futures=True)
