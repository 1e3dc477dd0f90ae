import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbert import matmul


def _arrays(seed, *shapes):
  keys = jax.random.split(jax.random.key(seed), len(shapes))
  return [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, shapes)]


def _grads(f, *args):
  g = _arrays(99, f(*args).shape)[0]  # a random cotangent, so no gradient is a plain sum
  return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * g), argnums=tuple(range(len(args)))))(*args)


@pytest.mark.parametrize("k_shape", [(16, 24), (24, 16)])  # x or g transposed in the backward
def test_dense_product_and_gradients_match_the_plain_product(k_shape):
  x, k = _arrays(0, (3, 7, k_shape[0]), k_shape)
  dims = (((2,), (0,)), ((), ()))
  ours = lambda x, k: matmul.dot_general(x, k, dims)
  plain = lambda x, k: jax.lax.dot_general(x, k, dims)
  np.testing.assert_allclose(ours(x, k), plain(x, k), rtol=1e-6, atol=1e-6)
  for got, want in zip(_grads(ours, x, k), _grads(plain, x, k)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [10, 40])  # fewer rows than H take XLA's own path
def test_tied_logits_and_gradients_match_the_plain_product(rows):
  x, w = _arrays(1, (2, rows // 2, 16), (40, 16))
  plain = lambda x, w: jnp.dot(x, w.T, preferred_element_type=jnp.float32)
  assert matmul.logits(x, w).dtype == jnp.float32
  np.testing.assert_allclose(matmul.logits(x, w), plain(x, w), rtol=1e-6, atol=1e-6)
  for got, want in zip(_grads(matmul.logits, x, w), _grads(plain, x, w)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_flax_dense_takes_the_cpu_path_in_float32_only():
  def barriers(dtype):
    layer = nn.Dense(8, dtype=dtype, dot_general=matmul.dot_general)
    x = jnp.ones((4, 6))
    params = layer.init(jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(jax.grad(lambda p: layer.apply(p, x).astype(jnp.float32).sum()))(params)
    return str(jaxpr).count("optimization_barrier")
  assert barriers(jnp.float32) > 0  # the custom backward, on this CPU
  assert barriers(jnp.bfloat16) == 0  # plain lax.dot_general


def test_tied_logits_take_the_cpu_path_only_with_more_rows_than_width():
  def barriers(rows):
    x, w = _arrays(3, (rows, 16), (40, 16))
    return str(jax.make_jaxpr(jax.grad(lambda x: matmul.logits(x, w).sum()))(x)).count(
        "optimization_barrier")
  assert barriers(40) > 0 and barriers(16) == 0


def test_other_contractions_fall_through_to_lax():
  a, b = _arrays(2, (4, 6, 5), (4, 5, 3))
  dims = (((2,), (1,)), ((0,), (0,)))  # batched: not the Dense layout
  np.testing.assert_array_equal(matmul.dot_general(a, b, dims), jax.lax.dot_general(a, b, dims))
