"""Matrix products whose weight gradient XLA's CPU backend computes at its fast matmul's speed.

The weight gradient of y = x @ k is x.T @ g: a product contracting the first axis of both
operands. XLA's CPU backend sends a matmul to its fast library (YNNPACK) only when the left
operand contracts its last axis; this one falls back to a generic loop nest, and for the tied
MLM head (g is [rows, vocab]) it first copies all of g into the transposed layout. Here the
backward materialises the narrower of x.T and g.T and multiplies it by the other as they lie,
behind optimisation barriers so that XLA's simplifier does not fold the transpose back: for the
head, x.T ([hidden, rows]) instead of g.T ([vocab, rows]). BENCHMARKS.md has the measured effect.

The same holds in bfloat16, where the products accumulate in float32 (the head's logits stay
float32; a Dense output is rounded to bfloat16 once): on a CPU with native bfloat16 dot products
(AVX-512 BF16) that is what makes bfloat16 compute faster than float32 rather than slower.
GPUs multiply transposed operands natively, so there these are the plain products.
"""
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax


_FAST_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def _fast_path(*arrays) -> bool:
  dtype = arrays[0].dtype
  return (jax.default_backend() == "cpu" and dtype in _FAST_DTYPES
          and all(a.dtype == dtype for a in arrays))


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                **kwargs):
  """lax.dot_general for flax's Dense (`nn.Dense(dot_general=...)`): lhs [..., in] @ rhs [in, out].

  `precision` does not apply on the CPU fast path: float32 products there are full precision.
  Other keywords (a newer flax may pass more) go to lax.dot_general, off the fast path if set.
  """
  (lhs_contract, rhs_contract), batch = dimension_numbers
  dense = (tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,)
           and tuple(map(tuple, batch)) == ((), ()) and rhs.ndim == 2)
  fast = (dense and _fast_path(lhs, rhs) and preferred_element_type in (None, lhs.dtype)
          and all(v is None for v in kwargs.values()))
  if not fast:
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type, **kwargs)
  # Transpose the narrower side: x [n, in] when in <= out, else g [n, out].
  y = _product(lhs.reshape(-1, lhs.shape[-1]), rhs, rhs.shape[0] <= rhs.shape[1], lhs.dtype)
  return y.reshape(*lhs.shape[:-1], rhs.shape[1])


def logits(x, w):
  """x [..., H] @ w [V, H].T -> [..., V] float32: the tied decoder's product."""
  rows = math.prod(x.shape[:-1])
  # With no more rows than H, XLA's own choice (copy g to [V, rows], then the fast product) moves
  # less memory than transposing x and then the [H, V] result back.
  if not _fast_path(x, w) or rows <= x.shape[-1]:
    return jnp.dot(x, w.T, preferred_element_type=jnp.float32)
  y = _product(x.reshape(rows, x.shape[-1]), w.T, True, jnp.dtype(jnp.float32))
  return y.reshape(*x.shape[:-1], w.shape[0])


def _dot(a, b, out):
  return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _product(x, k, transpose_x, out):
  """x [n, in] @ k [in, out], accumulated in float32, returned as `out`; the backward transposes
  x if `transpose_x`, else g."""
  del transpose_x
  return _dot(x, k, out)


def _forward(x, k, transpose_x, out):
  del transpose_x
  return _dot(x, k, out), (x, k)


def _backward(transpose_x, out, residuals, g):
  del out
  x, k = residuals
  g = g.astype(x.dtype)  # bfloat16 products take bfloat16 operands, as in mixed precision anywhere
  barrier = lax.optimization_barrier
  if transpose_x:
    k_grad = barrier(_dot(barrier(x.T), g, k.dtype))  # [in, n] @ [n, out]
  else:
    k_grad = barrier(_dot(barrier(g.T), x, k.dtype)).T  # ([out, n] @ [n, in]).T, a small copy
  return _dot(g, k.T, x.dtype), k_grad


_product.defvjp(_forward, _backward)
