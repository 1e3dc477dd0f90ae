"""finetune.augment="mlm": contextual augmentation (Kobayashi, "Contextual Augmentation: Data
Augmentation by Words with Paradigmatic Relations", NAACL 2018; Wu et al., "Conditional BERT
Contextual Augmentation", ICCS 2019) with our own pretrained masked LM.

n whole words of the example (those the model sees, punctuation apart, within its model.max_len
tokens) are each replaced by one [MASK], the model predicts them all at once, and each is
replaced by a token sampled from its softmax (a whole word: never a special token, a ## piece,
punctuation or the word itself). The rest of the text is kept character for character. Unlike
Wu et al., the label is not given to the model: the pretrained MLM knows no labels.
"""

import dataclasses
import functools
import re
import typing

import jax
import jax.numpy as jnp
import numpy as np

from jaxbert import model as model_lib
from jaxbert.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS

from .classifier import padded_index
from .copies import changed_words, rng


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
    take = padded_index(np.arange(start, min(start + size, total)), size)
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
