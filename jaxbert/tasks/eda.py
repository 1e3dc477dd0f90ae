"""finetune.augment="eda": Easy Data Augmentation (Wei & Zou, "EDA: Easy Data Augmentation
Techniques for Boosting Performance on Text Classification Tasks", EMNLP-IJCNLP 2019).

Each copy applies one of the four operations, the copies of an example taking them in turn:
synonym replacement (n distinct non-stopwords, every occurrence, by a WordNet synonym), random
insertion (a synonym of a word of the sentence at a random place, n times), random swap (two
words, n times) and random deletion (n words; the paper deletes each word with probability α,
which removes as many on average). n counts the words between spaces; synonyms come from
jaxbert.data.wordnet.
"""

import re
import typing

from jaxbert.data.text import STOPWORDS
from jaxbert.data.wordnet import WORD

from .copies import changed_words, digest, rng

OPERATIONS = ("synonym_replacement", "random_insertion", "random_swap", "random_deletion")
_AFFIXED = re.compile(r"(\W*)(.*?)(\W*)", re.S)  # "(word)," -> "(", "word", "),"


def _core(token: str) -> tuple[str, str, str]:
  return _AFFIXED.fullmatch(token).groups()


def _replaceable(token: str) -> str | None:
  """The lowercase word a token stands for, if it is one whose synonyms may replace it."""
  word = _core(token)[1].lower()
  return word if WORD.fullmatch(word) and word not in STOPWORDS else None


def eda(text: str, copy: int, rate: float, synonyms: typing.Callable) -> str:
  """Copy `copy` of `text` by one EDA operation, chosen by the text and the copy's index so that
  consecutive copies take the four operations in turn. `synonyms`: word -> sorted synonyms."""
  words = text.split()
  if not words:
    return text
  r, n = rng(text, copy), changed_words(rate, len(words))
  operation = OPERATIONS[(digest(text)[8] + copy) % len(OPERATIONS)]
  if operation == "synonym_replacement":
    # EDA replaces every occurrence of each of n distinct words that have synonyms.
    candidates = list(dict.fromkeys(w for w in map(_replaceable, words) if w and synonyms(w)))
    chosen = {w: None for w in (candidates[i] for i in r.permutation(len(candidates))[:n])}
    for w in chosen:
      chosen[w] = synonyms(w)[r.integers(len(synonyms(w)))]
    words = [_swap_core(t, chosen.get(_replaceable(t))) for t in words]
  elif operation == "random_insertion":
    for _ in range(n):
      for _ in range(10):  # EDA tries 10 random words for one that has synonyms
        word = _replaceable(words[r.integers(len(words))])
        options = synonyms(word) if word else ()
        if options:
          words.insert(int(r.integers(len(words) + 1)), options[r.integers(len(options))])
          break
  elif operation == "random_swap":
    for _ in range(n if len(words) > 1 else 0):
      i, j = r.choice(len(words), 2, replace=False)
      words[i], words[j] = words[j], words[i]
  else:  # random deletion; one word always stays
    gone = set(r.permutation(len(words))[:min(n, len(words) - 1)].tolist())
    words = [w for i, w in enumerate(words) if i not in gone]
  return " ".join(words)


def _swap_core(token: str, synonym: str | None) -> str:
  """The token with its word replaced and its punctuation (and a leading capital) kept."""
  if synonym is None:
    return token
  pre, core, post = _core(token)
  return pre + (synonym[:1].upper() + synonym[1:] if core[:1].isupper() else synonym) + post
