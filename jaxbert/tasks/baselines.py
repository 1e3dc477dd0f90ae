"""Baselines scored beside every fine-tune, trained on the same splits.

- bag of words: an L2 logistic (or, for regression, linear) model on binary word features;
- a small CNN text classifier in the style of Kim (2014): token embedding, 1-D convolutions of
  widths 3, 4 and 5, max-pooling over time, dropout, a dense output. It reads the same token ids
  as the encoder and is trained by finetune.py's loop (same epochs, batch and schedule), so the
  only difference from the transformer rows is the model.
"""
import collections
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class TextCNN(nn.Module):
  vocab_size: int
  embed: int
  filters: int
  num_outputs: int
  dropout: float
  widths: tuple = (3, 4, 5)

  @nn.compact
  def __call__(self, tokens, mask, deterministic=True):
    valid = mask.astype(bool)[..., None]
    x = nn.Embed(self.vocab_size, self.embed)(tokens) * valid
    pooled = []
    for w in self.widths:
      h = nn.relu(nn.Conv(self.filters, (w,), padding="SAME", name=f"conv{w}")(x))
      # Padding positions must not win the max; ReLU output is >= 0, so 0 is a safe floor.
      pooled.append(jnp.max(jnp.where(valid, h, 0.0), axis=1))
    h = nn.Dropout(self.dropout)(jnp.concatenate(pooled, -1), deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(h)


def _words(text: str) -> set[str]:
  return set(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))


def _example_words(split, i) -> set[str]:
  # The second text of a pair gets its own features: "b:word" is not "word".
  words = _words(split.text_a[i])
  if split.text_b is not None:
    words |= {"b:" + w for w in _words(split.text_b[i])}
  return words


def bag_of_words(task, train, cfg) -> dict:
  """Dev predictions {split: array} of a bag-of-words model (words seen twice in train).

  Each example is its padded list of distinct word ids, so the model is a sum of weight rows:
  the same as a dense binary vector times W, without the [examples, vocabulary] matrix.
  Deterministic (zero init, full-batch Adam), so it runs once, not per seed.
  """
  train_words = [_example_words(train, i) for i in range(len(train))]
  counts = collections.Counter(w for ws in train_words for w in ws)
  vocab = {w: i for i, w in enumerate(sorted(w for w, n in counts.items() if n >= 2))}

  def features(word_sets):
    ids = [[vocab[w] for w in sorted(ws) if w in vocab] for ws in word_sets]
    out = np.full((len(ids), max(map(len, ids), default=0) + 1), -1, np.int32)
    for row, x in zip(out, ids):
      row[: len(x)] = x
    return out

  x, y = features(train_words), train.labels
  k = task.num_outputs
  params = dict(w=jnp.zeros((len(vocab) + 1, k)), b=jnp.zeros(k))

  def outputs(p, ids):  # id -1 (padding) picks the last row, which `where` then zeroes
    return jnp.where(ids[..., None] >= 0, p["w"][ids], 0.0).sum(1) + p["b"]

  def loss_fn(p):
    out = outputs(p, x)
    data_loss = (jnp.mean((out[:, 0] - y) ** 2) if task.regression
                 else optax.softmax_cross_entropy_with_integer_labels(out, y).mean())
    return data_loss + 0.5 * cfg.bow_l2 * jnp.sum(p["w"] ** 2)

  tx = optax.adam(cfg.bow_lr)

  @jax.jit
  def fit(p):
    def step(carry, _):
      p, s = carry
      updates, s = tx.update(jax.grad(loss_fn)(p), s)
      return (optax.apply_updates(p, updates), s), None
    return jax.lax.scan(step, (p, tx.init(p)), None, length=cfg.bow_steps)[0][0]

  params = fit(params)
  predictions = {}
  for name, split in task.dev.items():
    out = np.asarray(outputs(params, features(
        [_example_words(split, i) for i in range(len(split))])))
    predictions[name] = out[:, 0] if task.regression else np.argmax(out, -1)
  return predictions
