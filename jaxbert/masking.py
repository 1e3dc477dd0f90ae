"""Exact-count MLM masking: a pure function of (row, seed, example index), vectorised over rows.

Every row gets exactly `num_masked` prediction slots, so the sparse MLM head sees a static shape
under jit, and the choice depends only on (seed, index): a resumed run, a second epoch or
another worker reproduces the same masks without any saved random state. Rows of ordinary tokens
(data.pack="stream") fill every slot; padded rows (data.pack="sentences") predict round(rate ×
their ordinary tokens) and give the other slots weight 0, so a short row is not masked denser.

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
              special_ids, rate: float | None = None) -> dict:
  """Chooses `count` positions in each row of `rows` [B, L] and corrupts them.

  `indices` [B] are the rows' example indices, which with `seed` fix every draw. Returns int32
  `inputs` [B, L], int32 `positions` [B, count] (ascending), int32 `targets` [B, count] (the
  original tokens) and float32 `weights` [B, count]: 1, or 0 for padding picks when a row has
  fewer than `count` ordinary tokens. With `rate`, a row predicts only num_masked(rate, its
  ordinary tokens) of its `count` picks (none if it has none), a uniform sample of its ordinary
  positions, and the others get weight 0; `count` must be at least that for every row. Special
  tokens are never predicted, and a pick of weight 0 leaves its token as it was; random
  replacements are drawn from the ordinary vocabulary (ids above the largest special id).
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
  top = np.argpartition(keys, -count, axis=1)[:, -count:]
  if rate is None:
    picked = np.sort(top, axis=1).astype(np.int32)
    weights = np.take_along_axis(ordinary, picked, 1).astype(np.float32)
  else:
    # The `want` largest keys of a row are a uniform sample of its ordinary positions: rank the
    # picks by key, then put them in position order as above.
    real = ordinary.sum(1)
    want = np.minimum(real, np.maximum(1, np.round(rate * real).astype(np.int64)))
    rank = np.argsort(np.argsort(-np.take_along_axis(keys, top, 1), axis=1), axis=1)
    by_position = np.argsort(top, axis=1)
    picked = np.take_along_axis(top, by_position, 1).astype(np.int32)
    weights = np.take_along_axis(rank < want[:, None], by_position, 1).astype(np.float32)
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
