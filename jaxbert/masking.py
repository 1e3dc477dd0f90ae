"""Exact-count MLM masking: a pure function of (row, seed, example index), vectorised over rows.

Every row gets exactly `num_masked` predicted positions, so the sparse MLM head sees a static
shape under jit, and the choice depends only on (seed, index): a resumed run, a second epoch or
another worker reproduces the same masks without any saved random state.

The random numbers are counter-based (counters.py): hashes of (seed, example index, stream,
position) rather than draws from a generator seeded per row, so a whole batch is masked in a few
numpy calls, with the same result as masking its rows one at a time.
"""

import numpy as np

from jaxbert import counters

# BERT's corruption rule: of the chosen positions, 80% become [MASK], 10% a random token, 10% stay.
MASK_FRACTION = 0.8
RANDOM_FRACTION = 0.1

# Streams: independent hash inputs for the three draws of a row.
_KEYS, _ACTION, _TOKEN = 1, 2, 3


def num_masked(rate: float, seq_len: int) -> int:
  """Masked positions per row: round(rate × length), at least one."""
  return max(1, int(round(rate * seq_len)))


def mask_rows(rows, seed: int, indices, *, count: int, mask_id: int, vocab_size: int,
              special_ids) -> dict:
  """Chooses `count` positions in each row of `rows` [B, L] and corrupts them.

  `indices` [B] are the rows' example indices, which with `seed` fix every draw. Returns int32
  `inputs` [B, L], int32 `positions` [B, count] (ascending), int32 `targets` [B, count] (the
  original tokens) and float32 `weights` [B, count]: 1, or 0 for padding picks when a row has
  fewer than `count` ordinary tokens. Special tokens are never chosen; random replacements are
  drawn from the ordinary vocabulary (ids above the largest special id).
  """
  rows = np.asarray(rows, dtype=np.int32)
  indices = np.asarray(indices, dtype=np.int64).reshape(-1)
  n, length = rows.shape
  if len(indices) != n:
    raise ValueError(f"{n} rows but {len(indices)} indices")
  if n == 0:
    empty = np.zeros((0, count))
    return {"inputs": rows.copy(), "positions": empty.astype(np.int32),
            "targets": empty.astype(np.int32), "weights": empty.astype(np.float32)}
  ordinary = ~np.isin(rows, np.asarray(special_ids, dtype=np.int32))
  # Random keys with specials pushed to -1: the top `count` keys are a uniform sample of the
  # ordinary positions (the same idea as argsort-and-take-last in the cramming code).
  row_keys = counters.key(seed, indices)
  keys = np.where(ordinary, counters.uniform(counters.bits(row_keys, _KEYS, length)), -1.0)
  picked = np.sort(np.argpartition(keys, -count, axis=1)[:, -count:], axis=1).astype(np.int32)
  weights = np.take_along_axis(ordinary, picked, 1).astype(np.float32)
  targets = np.take_along_axis(rows, picked, 1)

  action = counters.uniform(counters.bits(row_keys, _ACTION, count))
  first_ordinary = int(max(special_ids)) + 1
  random_tokens = (first_ordinary + counters.bits(row_keys, _TOKEN, count)
                   % np.uint64(vocab_size - first_ordinary)).astype(np.int32)
  replaced = np.where(action < MASK_FRACTION, mask_id,
                      np.where(action < MASK_FRACTION + RANDOM_FRACTION, random_tokens, targets))
  inputs = rows.copy()
  np.put_along_axis(inputs, picked, np.where(weights > 0, replaced, targets).astype(np.int32), 1)
  return {"inputs": inputs, "positions": picked, "targets": targets, "weights": weights}


def mask_row(row, seed: int, index: int, **kwargs) -> dict:
  """mask_rows for one row [L] and its example index; the same draws it gets in any batch."""
  out = mask_rows(np.asarray(row)[None], seed, [index], **kwargs)
  return {k: v[0] for k, v in out.items()}
