"""What every augmented copy shares, whichever method makes it (augment.py): how many words it
changes, and randomness seeded by the text and the copy's index alone.

A SHA-256 of the text, not Python's salted hash(), so an example gets the same copies in any
subset, in any order, in every run.
"""

import hashlib

import numpy as np


def changed_words(rate: float, words: int) -> int:
  """How many of `words` words a copy changes: max(1, round(rate × words)), and no more than
  there are."""
  return min(words, max(1, round(rate * words)))


def digest(text: str) -> bytes:
  return hashlib.sha256(text.encode("utf-8")).digest()


def rng(text: str, copy: int) -> np.random.Generator:
  """The randomness of copy `copy` of `text`: the same in every run and on every machine."""
  return np.random.default_rng([int.from_bytes(digest(text)[:8], "little"), copy])
