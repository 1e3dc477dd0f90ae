"""Exact-count MLM masking: a pure function of (row, seed, example index).

Every row gets exactly `num_masked` predicted positions, so the sparse MLM head sees a static
shape under jit, and the choice depends only on (seed, index): a resumed run, a second epoch or
another worker reproduces the same masks without any saved random state.
"""

import numpy as np

# BERT's corruption rule: of the chosen positions, 80% become [MASK], 10% a random token, 10% stay.
MASK_FRACTION = 0.8
RANDOM_FRACTION = 0.1


def num_masked(rate: float, seq_len: int) -> int:
  """Masked positions per row: round(rate × length), at least one."""
  return max(1, int(round(rate * seq_len)))


def mask_row(row, seed: int, index: int, *, count: int, mask_id: int, vocab_size: int,
             special_ids) -> dict:
  """Chooses `count` positions of `row` and corrupts them.

  Returns int32 `inputs` [L], int32 `positions` [count] (ascending), int32 `targets` [count]
  (the original tokens) and float32 `weights` [count]: 1, or 0 for padding picks when the row has
  fewer than `count` ordinary tokens. Special tokens are never chosen; random replacements are
  drawn from the ordinary vocabulary (ids above the largest special id).
  """
  row = np.asarray(row, dtype=np.int32)
  rng = np.random.default_rng([seed, index])
  ordinary = ~np.isin(row, np.asarray(special_ids, dtype=np.int32))
  # Random keys with specials pushed to -1: the top `count` keys are a uniform sample of the
  # ordinary positions (the same idea as argsort-and-take-last in the cramming code).
  keys = np.where(ordinary, rng.random(row.shape[0]), -1.0)
  picked = np.sort(np.argpartition(keys, -count)[-count:]).astype(np.int32)
  weights = ordinary[picked].astype(np.float32)
  targets = row[picked]

  action = rng.random(count)
  first_ordinary = int(max(special_ids)) + 1
  random_tokens = rng.integers(first_ordinary, vocab_size, size=count, dtype=np.int32)
  replaced = np.where(action < MASK_FRACTION, mask_id,
                      np.where(action < MASK_FRACTION + RANDOM_FRACTION, random_tokens, targets))
  inputs = row.copy()
  inputs[picked] = np.where(weights > 0, replaced, targets)
  return {"inputs": inputs, "positions": picked, "targets": targets, "weights": weights}
