"""The fine-tuning model: the pretrained encoder with a dense head on a pooled vector; its input.

Texts become [CLS] a [SEP] (or [CLS] a [SEP] b [SEP] for pairs), padded to a fixed length, the
rows the encoder saw in pretraining with the special tokens a BERT classifier expects.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxbert import data
from jaxbert.model import Encoder, ModelConfig

POOLINGS = ("first", "mean")  # finetune.pooling, see Classifier (config.FIELDS reads it)


class Classifier(nn.Module):
  """The pretraining encoder with a dense layer on a pooled vector of its outputs.

  num_outputs: the number of classes, or 1 for a regression head (trained with squared error).
  pooling: "first", the [CLS] position as in BERT; or "mean", the average over the example's
    tokens (padding left out). Our pretraining rows hold no [CLS], so after a short cram its
    output has learned nothing yet, while every other position has.
  The original arch pools "first" through BERT's pooler (a dense layer and tanh), so that its
  classifiers are transformers' BertForSequenceClassification, weight for weight.
  """
  config: ModelConfig
  num_outputs: int
  pooling: str = "first"

  @nn.compact
  def __call__(self, tokens, mask, deterministic=True, pooled=False):
    """[B, num_outputs] float32 outputs; with `pooled`, the [B, hidden] vector the head reads."""
    c = self.config
    x = Encoder(c, name="encoder")(tokens, attention_mask=mask, deterministic=deterministic)
    if self.pooling == "mean":
      w = mask.astype(jnp.float32)[..., None]
      x = (x.astype(jnp.float32) * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
    elif c.arch == "original":
      x = jnp.tanh(nn.Dense(c.hidden_size, kernel_init=nn.initializers.normal(c.init_std),
                            param_dtype=jnp.float32, name="pooler")(x[:, 0].astype(jnp.float32)))
    else:
      x = x[:, 0].astype(jnp.float32)
    if pooled:
      return x
    x = nn.Dropout(c.dropout)(x, deterministic=deterministic)
    return nn.Dense(self.num_outputs, kernel_init=nn.initializers.normal(c.init_std),
                    param_dtype=jnp.float32, name="head")(x.astype(jnp.float32))


def _truncate(la: int, lb: int, room: int) -> tuple[int, int]:
  """Lengths kept of a pair: the longer side is cut first, so both sides keep tokens."""
  if la + lb <= room:
    return la, lb
  if la >= lb:
    keep_b = min(lb, room // 2)
    return room - keep_b, keep_b
  keep_a = min(la, room // 2)
  return keep_a, room - keep_a


def encode(tokenizer, text_a, max_len: int, text_b=None):
  """(tokens, mask, cut): int32 [N, max_len] each, padded with PAD_ID, and how many of the N
  examples lost tokens to max_len.

  Single texts are [CLS] a [SEP]; pairs [CLS] a [SEP] b [SEP], the [SEP]-joined sentences the
  encoder saw in pretraining. Pairs are truncated longest side first.
  """
  n = len(text_a)
  tokens = np.full((n, max_len), data.PAD_ID, np.int32)
  mask = np.zeros((n, max_len), np.int32)
  enc_a = tokenizer.encode_batch(list(text_a), add_special_tokens=False)
  enc_b = (tokenizer.encode_batch(list(text_b), add_special_tokens=False) if text_b is not None
           else [None] * n)
  cut = 0
  for i, (a, b) in enumerate(zip(enc_a, enc_b)):
    if b is None:
      ids = [data.CLS_ID, *a.ids[: max_len - 2], data.SEP_ID]
      cut += len(a.ids) > max_len - 2
    else:
      ka, kb = _truncate(len(a.ids), len(b.ids), max_len - 3)
      ids = [data.CLS_ID, *a.ids[:ka], data.SEP_ID, *b.ids[:kb], data.SEP_ID]
      cut += (ka, kb) != (len(a.ids), len(b.ids))
    tokens[i, : len(ids)], mask[i, : len(ids)] = ids, 1
  return tokens, mask, cut


def padded_index(index: np.ndarray, rows: int) -> np.ndarray:
  """`index` [n <= rows] filled up to `rows` by repeating its last entry: the rows of a batch of
  fixed shape, so that it compiles once, whose filler rows are real ones (a row of padding alone
  would make attention divide by zero); keep the first n results."""
  return np.asarray(index)[np.minimum(np.arange(rows), len(index) - 1)]
