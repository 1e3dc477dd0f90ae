import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbert.cpu import matmul


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


def _bf16_exact(*arrays):
  """bfloat16 copies, and the float64 values they hold exactly, for a reference product."""
  low = [a.astype(jnp.bfloat16) for a in arrays]
  return low, [np.asarray(a, np.float64) for a in low]


# Our bfloat16 products accumulate in float32 and round once to bfloat16: against the exact
# (float64) product of the same bfloat16 values that is half a unit in the last place, at most
# 2**-8 of the value, plus float32's accumulation error; one unit, 2**-7, bounds both.
BF16_ULP = 2.0**-7


@pytest.mark.parametrize("k_shape", [(16, 24), (24, 16)])
def test_bfloat16_dense_product_and_gradients_are_float32_accumulated(k_shape):
  (x, k), (x64, k64) = _bf16_exact(*_arrays(0, (3, 7, k_shape[0]), k_shape))
  dims = (((2,), (0,)), ((), ()))
  y = matmul.dot_general(x, k, dims)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float64), x64 @ k64, rtol=BF16_ULP, atol=1e-6)
  g = _arrays(99, y.shape)[0]  # the cotangent _grads uses; bfloat16 products take it rounded
  g64 = np.asarray(g.astype(jnp.bfloat16), np.float64)
  x_grad, k_grad = _grads(lambda x, k: matmul.dot_general(x, k, dims), x, k)
  assert x_grad.dtype == k_grad.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(x_grad, np.float64), g64 @ k64.T,
                             rtol=BF16_ULP, atol=1e-6)
  np.testing.assert_allclose(np.asarray(k_grad, np.float64),
                             x64.reshape(-1, k_shape[0]).T @ g64.reshape(-1, k_shape[1]),
                             rtol=BF16_ULP, atol=1e-6)


def test_bfloat16_tied_logits_are_float32_and_so_is_their_accumulation():
  (x, w), (x64, w64) = _bf16_exact(*_arrays(1, (2, 20, 16), (40, 16)))
  got = matmul.logits(x, w)
  assert got.dtype == jnp.float32  # never rounded to bfloat16
  np.testing.assert_allclose(got, x64 @ w64.T, rtol=1e-5, atol=1e-6)
  g64 = np.asarray(_arrays(99, got.shape)[0].astype(jnp.bfloat16), np.float64)
  x_grad, w_grad = _grads(matmul.logits, x, w)
  np.testing.assert_allclose(np.asarray(x_grad, np.float64), g64 @ w64, rtol=BF16_ULP, atol=1e-6)
  np.testing.assert_allclose(np.asarray(w_grad, np.float64),
                             g64.reshape(-1, 40).T @ x64.reshape(-1, 16), rtol=BF16_ULP, atol=1e-6)


def test_flax_dense_takes_the_cpu_path_in_float32_and_bfloat16_only():
  def barriers(dtype):
    layer = nn.Dense(8, dtype=dtype, dot_general=matmul.dot_general)
    x = jnp.ones((4, 6))
    params = layer.init(jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(jax.grad(lambda p: layer.apply(p, x).astype(jnp.float32).sum()))(params)
    return str(jaxpr).count("optimization_barrier")
  assert barriers(jnp.float32) > 0 and barriers(jnp.bfloat16) > 0  # the custom backward
  assert barriers(jnp.float16) == 0  # plain lax.dot_general


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
