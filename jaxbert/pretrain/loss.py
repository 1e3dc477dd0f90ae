"""Softmax cross-entropy over the vocabulary and its top-1 hit, in few passes over the logits.

The MLM head's logits are the largest array of a step ([predicted rows, vocab]: 134 MB for 32
rows of 32 predictions at vocab 32768), so every pass over them counts. Written as optax's
cross-entropy plus `argmax` for the hits, it compiles on XLA's CPU backend to five: the max and
the argmax as one variadic reduce (slow), the exp-sum, a scatter of the label's gradient that
first copies the whole array, then the softmax gradient. Here the forward reads the logits
twice (the max, then exp and sum fused) and takes the hit from the max it already has; the
backward is one fused pass, softmax minus one-hot. `benchmarks/head.py` times it against the
plain form.
"""
import jax
import jax.numpy as jnp


@jax.custom_vjp
def cross_entropy(logits, targets):
  """float32 logits [..., V], int targets [...] -> (loss [...] float32, hit [...] bool).

  `hit` is true where the target's logit is the row's largest. Unlike `argmax == target`, a tie
  for the top counts as a hit; with float logits from a trained model ties do not occur.
  """
  return _forward(logits, targets)[0]


def _forward(logits, targets):
  if logits.dtype != jnp.float32:  # the model's head returns float32; bf16 logits would round
    raise TypeError(f"cross_entropy takes float32 logits, got {logits.dtype}")
  top = jnp.max(logits, axis=-1, keepdims=True)
  exp = jnp.exp(logits - top)
  total = jnp.sum(exp, axis=-1, keepdims=True)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)
  loss = (jnp.log(total) + top - picked)[..., 0]
  hit = (picked >= top)[..., 0]
  # Keep exp (not the logits) for the backward: the same memory, and no second exp pass.
  return (loss, hit), (exp, total, targets)


def _backward(residuals, cotangents):
  exp, total, targets = residuals
  g = cotangents[0][..., None]
  vocab = jax.lax.broadcasted_iota(targets.dtype, exp.shape, exp.ndim - 1)
  one_hot = (vocab == targets[..., None]).astype(exp.dtype)
  return g * (exp / total - one_hot), None  # None: integer targets have no gradient


cross_entropy.defvjp(_forward, _backward)
