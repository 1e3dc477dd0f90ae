"""The cleaning stage of a store build: every split's documents, from the mixed sources, cleaned
(text.clean, in worker processes) and filtered by length and exact duplicates into
clean-SPLIT.jsonl."""
import itertools
import json
import os

import numpy as np

from jaxbert import config as config_lib

from . import sources as sources_lib
from .streaming import SPLITS, chunked, log, progress
from .workers import Workers, clean_batch, init_cleaner


class _SeenHashes:
  """Exact-duplicate detection in bounded memory: 8-byte hashes in a sorted array, with recent
  ones in a small set merged in every MERGE_EVERY additions."""
  MERGE_EVERY = 1 << 20

  def __init__(self):
    self.sorted = np.zeros(0, np.uint64)
    self.recent = set()

  def add(self, h: int) -> bool:
    """True if `h` is new."""
    if h in self.recent:
      return False
    i = np.searchsorted(self.sorted, np.uint64(h))
    if i < len(self.sorted) and self.sorted[i] == h:
      return False
    self.recent.add(h)
    if len(self.recent) >= self.MERGE_EVERY:
      self.sorted = np.union1d(self.sorted, np.fromiter(self.recent, np.uint64))
      self.recent = set()
    return True


def _clean_split(c, srcs, split, path, k, stats, seen, cleaner: Workers,
                 batch_chars: int) -> None:
  docs = sources_lib.mixed(srcs, c["weights"], split, stats)
  if c["max_documents"]:
    docs = itertools.islice(docs, c["max_documents"])
  bar = progress(f"clean {split}")
  with open(path, "w", encoding="utf-8") as f:
    for raw, cleaned in cleaner.map(chunked(docs, batch_chars)):
      for doc_in, doc in zip(raw, cleaned):
        k["documents"] += 1
        k["chars_read"] += len(doc_in)
        if not doc:
          k["empty"] += 1
        elif len(doc) < c["min_chars"]:
          k["dropped_short"] += 1
        elif seen is not None and not seen.add(sources_lib.text_hash(doc)):
          k["dropped_duplicate"] += 1
        else:
          k["chars"] += len(doc)
          f.write(json.dumps(doc, ensure_ascii=False) + "\n")
      bar.advance(sum(map(len, raw)))
  bar.close()


def clean(out, c, srcs, counts, stats, batch_chars: int) -> int:
  """Cleans every split to disk; returns how many processes cleaned. Cleaned once: tokenizer
  training and encoding both read the text, and cleaning is the slow part at scale. Train first,
  so a duplicate of a train document leaves held-out."""
  seen = _SeenHashes() if c["dedup"] else None
  options = {k: c[k] for k in ("split_sentences", "remove_stopwords", "remove_punctuation")}
  cleaner = Workers(c["workers"], clean_batch, (options,), init_cleaner, ())
  try:
    for sp in SPLITS:
      _clean_split(c, srcs, sp, os.path.join(out, f"clean-{sp}.jsonl"), counts[sp], stats, seen,
                   cleaner, batch_chars)
  finally:
    cleaner.close()
  for src, st in zip(srcs, stats):
    if st["invalid_utf8_replaced"] or st["bad_records"] or st["binary_files"]:
      log(f"{src.spec}: {st['invalid_utf8_replaced']} invalid UTF-8 sequences replaced, "
          f"{st['bad_records']} bad records skipped, {st['binary_files']} binary files skipped")
  if counts["train"]["documents"] == 0:
    raise config_lib.ConfigError(
        f"data.sources={','.join(c['sources'])}: no training documents (" + "; ".join(
            f"{src.spec}: {st['files']} files, {st['empty_files']} empty, "
            f"{st['binary_files']} binary" for src, st in zip(srcs, stats)) + ")")
  return cleaner.workers if cleaner.pool is not None else 1

