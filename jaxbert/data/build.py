"""Building a token store, stage by stage, each streaming in bounded memory.

sources -> clean (text.clean, in worker processes) and filter by length and duplicates ->
clean-*.jsonl on disk -> tokenizer trained on the first tokenizer_sample_mb of it (or the given
one) -> encode in batches (tokenizer.Encoder, in the worker processes) -> ratio filter -> pack
rows (data.pack: "stream", documents joined by [SEP] and cut in seq_len pieces; or "sentences",
[CLS] sentence [SEP] ... [PAD], packing.py) -> shards. `build` writes into a directory that
store.prepare renames into place when it is complete.

The stages: cleaning.py, the tokenizer (trained or copied) here, then encoding.py; this module
runs them in order, checks what they kept and writes the store's manifest.json.
"""
import json
import os
import resource
import shutil
import time
from importlib import metadata
from typing import Iterable, Iterator

import numpy as np

from jaxbert import config as config_lib
from jaxbert import files

from . import sources as sources_lib
from . import text
from . import tokenizer as tokenizer_lib
from .cleaning import clean
from .encoding import encode, fill  # fill: also store.py's, from here
from .streaming import SPLITS, jsonl, log  # SPLITS, log: also store.py's, from here

# Characters per cleaning task and per encode_batch call; handed to the stages by each build, so
# that setting it here (as tests do, for many small batches) reaches them.
BATCH_CHARS = 4 << 20
RATIO_WARNING = 0.05  # a build warns when the token ratio drops more than this share of a split


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _sample(docs: Iterable[str], chars: int) -> Iterator[str]:
  seen = 0
  for d in docs:
    if seen >= chars:
      return
    seen += len(d)
    yield d


def _tokenizer(out, s, c, vocab):
  """The store's tokenizer.json: a copy of the given one, or one trained on the cleaned text."""
  path = os.path.join(out, "tokenizer.json")
  if c["tokenizer"]:
    shutil.copyfile(tokenizer_lib.given(c["tokenizer"], vocab), path)
    if files.sha256(path) != s["tokenizer"]["sha256"]:
      raise config_lib.ConfigError(f"data.tokenizer={c['tokenizer']!r} changed while the store "
                                   "was being built; run again")
    log(f"encoding with the given tokenizer {c['tokenizer']}")
    return tokenizer_lib.load(path)
  t = time.time()
  sample = _sample(jsonl(os.path.join(out, "clean-train.jsonl")),
                   int(c["tokenizer_sample_mb"] * 1e6))
  tok = tokenizer_lib.train(sample, vocab, lowercase=c["lowercase"], path=path)
  log(f"trained tokenizer on up to {c['tokenizer_sample_mb']} MB in {time.time() - t:.1f}s")
  return tok


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


def build(out: str, s: dict, c: dict, srcs: list, key: str) -> None:
  """Writes a store of settings `s` (options `c`, sources `srcs`) into the directory `out`."""
  t0 = time.time()
  vocab = s["tokenizer"]["vocab_size"]
  log(f"building store {key} from {', '.join(c['sources'])} "
      f"(vocab {vocab}, seq_len {s['seq_len']})")
  zero = dict(documents=0, chars_read=0, empty=0, dropped_short=0, dropped_duplicate=0,
              dropped_ratio=0, chars=0, tokens=0, rows=0)
  if c["pack"] == "sentences":
    zero.update(sentences=0, long_sentences=0)
  counts = {sp: dict(zero) for sp in SPLITS}
  stats = [sources_lib.new_stats() for _ in srcs]
  workers = clean(out, c, srcs, counts, stats, BATCH_CHARS)
  train = counts["train"]
  log(f"cleaned {train['documents']} train / {counts['heldout']['documents']} held-out "
      f"documents ({train['chars_read'] / 1e6:.1f} MB) in {time.time() - t0:.1f}s")
  t1 = time.time()
  tok = _tokenizer(out, s, c, vocab)
  t2 = time.time()
  dtype = np.uint16 if vocab <= 65536 else np.int32
  shards, unigram = encode(out, c, tok, vocab, counts, dtype, BATCH_CHARS)
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
      "tokenizer_sha256": files.sha256(os.path.join(out, "tokenizer.json")),
      "trained_vocab_size": tok.get_vocab_size(),  # < vocab_size when the corpus is too small
      "versions": {p: metadata.version(p)
                   for p in ("tokenizers", "nltk", "numpy")},
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
