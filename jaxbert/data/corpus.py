"""The embedded corpus: public-domain/CC0 English text shipped in the package.

Named corpus.py, not embedded.py, so the module does not shadow the embedded/
data folder. See embedded/SOURCES.md for provenance and licences.
"""
import functools
import hashlib
import itertools
import json
import lzma
import os
from typing import Iterator

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedded")
FILES = ("sotu.jsonl.xz", "moby_dick.jsonl.xz", "kjv.jsonl.xz")
SPLITS = ("train", "heldout")
HELDOUT_PER_MILLE = 30  # here 37 of 1560 documents, 1.5% of the text


def split_of(doc_id: str) -> str:
  # A hash of the id, not the position, so adding or reordering documents
  # never moves an existing one across the split.
  h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
  return "heldout" if h % 1000 < HELDOUT_PER_MILLE else "train"


def records(name: str) -> Iterator[dict]:
  with lzma.open(os.path.join(DIR, name), "rt", encoding="utf-8") as f:
    for line in f:
      yield json.loads(line)


def documents(split: str) -> Iterator[str]:
  """Raw document texts of one split, the sources interleaved round-robin
  so that any prefix (e.g. a max_documents cap) mixes all of them."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  streams = [(r["text"] for r in records(n) if split_of(r["id"]) == split) for n in FILES]
  for group in itertools.zip_longest(*streams):
    yield from (t for t in group if t is not None)


@functools.cache
def fingerprint() -> str:
  h = hashlib.sha256(f"heldout/{HELDOUT_PER_MILLE}".encode())  # the split is content too
  for name in FILES:
    with open(os.path.join(DIR, name), "rb") as f:
      h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
  return h.hexdigest()
