import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbert.pretrain.loss import cross_entropy

V = 37


def _case(seed=0, shape=(3, 5)):
  rng = np.random.default_rng(seed)
  logits = (rng.standard_normal(shape + (V,)) * 3).astype(np.float32)
  targets = rng.integers(0, V, shape).astype(np.int32)
  weights = rng.integers(0, 2, shape).astype(np.float32)
  return logits, targets, weights


def _reference(logits, targets, weights):
  """Float64 numpy: loss per position and the gradient of sum(loss * weights)."""
  x = logits.astype(np.float64)
  log_p = x - x.max(-1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
  one_hot = np.eye(V)[targets]
  loss = -(log_p * one_hot).sum(-1)
  return loss, weights[..., None] * (np.exp(log_p) - one_hot)


def test_loss_and_gradient_match_a_float64_softmax():
  logits, targets, weights = _case()
  want_loss, want_grad = _reference(logits, targets, weights)
  loss, _ = jax.jit(cross_entropy)(logits, targets)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(cross_entropy(x, targets)[0] * weights)))(logits)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-7)


def test_large_logits_do_not_overflow():
  logits, targets, weights = _case(seed=1)
  logits = logits + 1e4  # exp(1e4) overflows float32 without the max shift
  loss, _ = cross_entropy(logits, targets)
  grad = jax.grad(lambda x: jnp.sum(cross_entropy(x, targets)[0] * weights))(logits)
  assert np.isfinite(loss).all() and np.isfinite(grad).all()
  want_loss, want_grad = _reference(logits - 1e4, targets, weights)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-3, atol=1e-3)  # +1e4 keeps ~4 digits
  np.testing.assert_allclose(grad, want_grad, atol=1e-3)


def test_hit_is_argmax_equal_to_target():
  logits, targets, _ = _case(seed=2, shape=(64,))
  targets[:32] = logits[:32].argmax(-1)  # half of them right
  _, hit = cross_entropy(logits, targets)
  np.testing.assert_array_equal(hit, logits.argmax(-1) == targets)
  assert hit.sum() == 32 + (logits[32:].argmax(-1) == targets[32:]).sum()


def test_a_tie_for_the_top_counts_as_a_hit():
  logits = np.zeros((1, V), np.float32)
  logits[0, [4, 9]] = 2.0
  _, hit = cross_entropy(logits, np.array([9], np.int32))
  assert hit[0]  # argmax would say 4


def test_bfloat16_logits_are_refused():
  logits, targets, _ = _case()
  with pytest.raises(TypeError, match="float32"):
    cross_entropy(jnp.asarray(logits, jnp.bfloat16), targets)
