"""Counter-based randomness for the data pipeline: every draw is a hash of where it is used.

Masks and epoch orders are pure functions of (seed, epoch, example index, position), so any batch
can be produced on its own, by any thread or process, in any order, with the same result, and a
resumed run needs no saved random state. The hash is SplitMix64's finaliser (a bijection on
uint64 whose output bits all depend on every input bit); numpy's uint64 arithmetic wraps, as the
hash wants, and works on whole arrays at once.
"""

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix(z) -> np.ndarray:
  z = np.asarray(z, np.uint64)
  with np.errstate(over="ignore"):  # numpy warns on wrapping scalars (not arrays); it is meant
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
  return z ^ (z >> np.uint64(31))


def key(*parts) -> np.ndarray:
  """One uint64 (or an array, where a part is an array) from a sequence of integers."""
  z = np.zeros((), np.uint64)
  for p in parts:
    z = mix(z ^ np.asarray(p).astype(np.uint64))
  return z


def bits(row_keys: np.ndarray, stream: int, width: int) -> np.ndarray:
  """[rows, width] uint64 draws: column c of row r hashes (row_keys[r], stream, c)."""
  col = mix(np.uint64(stream << 32) + np.arange(width, dtype=np.uint64))
  return mix(np.asarray(row_keys, np.uint64)[:, None] ^ col[None, :])


def uniform(b: np.ndarray) -> np.ndarray:
  """Floats in [0, 1) from uint64 draws, 53 random bits each."""
  return (b >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def permute(k, positions, n: int, rounds: int = 4) -> np.ndarray:
  """A keyed permutation of range(n), evaluated at `positions` (each in [0, n)).

  A balanced Feistel network on the smallest even number of bits that holds n, cycle-walked back
  into range: a bijection for any n and key, computed in O(len(positions)) time and memory, so an
  epoch's order over any number of rows is never materialised.
  """
  half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
  low, shift = np.uint64((1 << half) - 1), np.uint64(half)
  round_keys = [key(k, r) for r in range(rounds)]

  def once(x):
    left, right = x >> shift, x & low
    for rk in round_keys:
      left, right = right, left ^ (mix(right ^ rk) & low)
    return (left << shift) | right

  out = once(np.asarray(positions, np.uint64))
  walking = np.flatnonzero(out >= np.uint64(n))
  while len(walking):  # the domain is under 4n, so each pass sends most walkers home
    out[walking] = once(out[walking])
    walking = walking[out[walking] >= np.uint64(n)]
  return out.astype(np.int64)
