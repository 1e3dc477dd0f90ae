"""Tokenized, packed and cached training data: which store a data config names, and reading it.

prepare() turns a data config into CACHE/stores/<key>/ holding
  manifest.json          what made the store (settings, tokenizer hash), counts, timings
  tokenizer.json         WordPiece trained on a bounded sample of the train split, or a copy of
                         the one given by data.tokenizer
  train-NNNNN.npy        [rows, seq_len] token ids in shards (shards.py), memory-mapped when
                         loaded: documents joined by [SEP], no [CLS] (data.pack="stream"), or
                         [CLS] sentence [SEP] ... [PAD] (data.pack="sentences", packing.py)
  heldout-NNNNN.npy      the same, from the held-out documents
  train-dots.npy         per train row, its count of "." tokens (the curriculum order's key)
  unigram.npy            int64 count of each id over the train rows, [PAD] left out (unigram
                         baseline)
The key hashes everything that determines the bytes (config.STORE_FIELDS and the vocabulary
size), so equal settings reuse the store and any change builds a new one. The build (build.py)
runs in a temporary directory beside the store and is renamed into place at the end; temporary
directories of builds whose process has died are removed.
"""
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import socket

import ml_collections
import numpy as np

from jaxbert import config as config_lib
from jaxbert import files

from . import sources as sources_lib
from . import text
from . import tokenizer as tokenizer_lib
from .build import SPLITS, build, fill, log
from .packing import PACKS
from .shards import Rows
from .tokenizer import SPECIAL_TOKENS

FORMAT_VERSION = 2
# Where and how a store is built, beside what it holds (config.STORE_FIELDS); not in its key.
_BUILD_FIELDS = ("tfds_data_dir", "workers", "cache_dir")


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
    seq_len, dtype = manifest["settings"]["seq_len"], manifest["dtype"]
    pack = manifest["settings"].get("pack", "stream")
    rows = {sp: Rows.load(path, manifest["shards"][sp], seq_len, dtype, f"{sp}-dots.npy", pack)
            for sp in SPLITS}
    return cls(path, rows["train"], rows["heldout"], os.path.join(path, "tokenizer.json"),
               manifest["settings"]["tokenizer"]["vocab_size"],
               np.load(os.path.join(path, "unigram.npy"), mmap_mode="r"), manifest)


def default_config() -> ml_collections.ConfigDict:
  return config_lib.default().data


def _options(data_cfg) -> dict:
  defaults = default_config()
  fields = (*config_lib.STORE_FIELDS, *_BUILD_FIELDS)
  c = {k: data_cfg.get(k, defaults[k]) for k in fields}
  # Typed, so that e.g. a ratio of 0 and 0.0 give the same key.
  for k in fields:
    if k not in ("sources", "weights"):
      c[k] = type(defaults[k])(c[k])
  c["sources"] = sources_lib.as_list(c["sources"])
  if not c["sources"]:
    raise config_lib.ConfigError("data.sources is empty; e.g. data.sources='embedded'")
  c["weights"] = sources_lib.weights_for(c["sources"], c["weights"])
  if c["pack"] not in PACKS:
    raise config_lib.ConfigError(f"data.pack={c['pack']!r}: use 'stream' or 'sentences'")
  if c["pack"] == "sentences":
    if c["seq_len"] < 3:
      raise config_lib.ConfigError(f"data.seq_len={c['seq_len']} is too short for "
                                   "data.pack='sentences' ([CLS], a token, [SEP]); use >= 3")
    # Sentence rows are packed from punkt's sentences, one per line of the cleaned text; with
    # the option set here, both values of data.split_sentences name the one store they make.
    c["split_sentences"] = True
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
      # The sentences are the shipped Punkt tables': new tables make a new store.
      **({"punkt": text.punkt_digest()} if c["split_sentences"] else {}),
      "tokenizer": _tokenizer_settings(c, vocab_size),
      "seq_len": c["seq_len"],
      # Only when not "stream": stores made before data.pack existed keep their keys.
      **({"pack": c["pack"]} if c["pack"] != "stream" else {}),
  }


def _tokenizer_settings(c: dict, vocab_size: int) -> dict:
  if c["tokenizer"]:  # a given tokenizer counts by its bytes, wherever the file lies
    return {"type": "given", "vocab_size": int(vocab_size),
            "sha256": files.sha256(tokenizer_lib.given(c["tokenizer"], vocab_size))}
  return {"type": "wordpiece", "vocab_size": int(vocab_size), "lowercase": c["lowercase"],
          "special_tokens": list(SPECIAL_TOKENS), "sample_mb": c["tokenizer_sample_mb"]}


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
      build(tmp, s, c, _sources(c), store_key(s))
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
      log(f"removing {name}, left by an interrupted build")
      shutil.rmtree(os.path.join(stores, name), ignore_errors=True)
    except PermissionError:  # alive, another user's
      pass


def summary(store: TokenStore) -> str:
  """A few lines on what a store holds and what its build dropped."""
  m = store.manifest
  lines = [f"token store {store.path}",
           f"  tokenizer: vocab {m['trained_vocab_size']}, sha256 {m['tokenizer_sha256'][:16]}"]
  for sp, k in m["counts"].items():
    seq_len = m["settings"]["seq_len"]
    lines.append(f"  {sp}: {k['rows']} rows of {seq_len} ({k['tokens']} tokens{fill(k, seq_len)}) "
                 f"from {k['documents']} documents ({k['chars_read'] / 1e6:.1f} MB); dropped: "
                 f"{k['empty']} empty, {k['dropped_short']} short, {k['dropped_duplicate']} "
                 f"duplicate, {k['dropped_ratio']} over the token ratio")
  for s in m["sources"]:
    lines.append(f"  {s['spec']}: {s['files']} files ({s['empty_files']} empty, "
                 f"{s['binary_files']} binary skipped), {s['invalid_utf8_replaced']} invalid "
                 f"UTF-8 sequences replaced, {s['bad_records']} bad records skipped")
  return "\n".join(lines)
