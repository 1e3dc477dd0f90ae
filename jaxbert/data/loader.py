"""Batches for pretraining: grain over packed rows, masking as a seeded per-index map.

The pipeline is random-access up to the last step (shuffle, repeat, mask, batch), so an
iterator's position is one integer and its state is tiny to checkpoint; masks depend only on
(seed, global example index), so epochs differ and a resumed run sees the batches it would have.
"""

import functools

import grain
import numpy as np

from jaxbert import masking
from jaxbert.data import tokenizer


def mask_fn(seed: int, mask_rate: float, vocab_size: int, seq_len: int):
  """The per-example corruption used by training and held-out evaluation alike."""
  return functools.partial(
      _mask_example, seed, count=masking.num_masked(mask_rate, seq_len),
      mask_id=tokenizer.MASK_ID, vocab_size=vocab_size, special_ids=tokenizer.SPECIAL_IDS)


def _mask_example(seed, index, row, **kwargs):
  return masking.mask_row(row, seed, index, **kwargs)


def pretraining_batches(rows: np.ndarray, *, seed: int, batch_size: int, mask_rate: float,
                        vocab_size: int, threads: int = 4, buffer: int = 64) -> grain.IterDataset:
  """Endless shuffled, masked batches of `batch_size` rows; a new order each epoch."""
  mask = mask_fn(seed, mask_rate, vocab_size, rows.shape[1])
  ds = (grain.MapDataset.source(rows).seed(seed).shuffle().repeat()
        .map_with_index(mask).batch(batch_size, drop_remainder=True))
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer))


def heldout_batches(rows: np.ndarray, *, seed: int, batch_size: int, mask_rate: float,
                    vocab_size: int):
  """One pass over the held-out rows in order, with masks fixed by `seed`; last batch partial."""
  mask = mask_fn(seed, mask_rate, vocab_size, rows.shape[1])
  ds = grain.MapDataset.source(rows).map_with_index(mask).batch(batch_size)
  return iter(ds.to_iter_dataset())
