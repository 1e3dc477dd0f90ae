"""Batches for pretraining: grain over packed rows, masked a batch at a time by example index.

The pipeline is random-access up to the last step (order, repeat, batch, read, mask), so an
iterator's position is one integer and its state is tiny to checkpoint; masks depend only on
(seed, global example index), so epochs differ and a resumed run sees the batches it would have.
Rows may be a numpy array or the store's memory-mapped shards (store.Rows): only the rows a batch
needs are read. Each batch is computed whole (the epoch order, the read and the masks are numpy
calls over its rows, counters.py and masking.mask_rows); grain only runs those in threads,
prefetches and keeps the position. Per-row Python work would cap the loader far below what a
GPU consumes.

Rows of data.pack="sentences" (packing.py) end in [PAD]s: their batches also hold a boolean
`attention_mask` [B, L] (False at [PAD]) for the model, and each row predicts round(mask_rate ×
its ordinary tokens) positions (masking.py). Stream rows hold no [PAD] and their batches no mask.

Multi-host: every process builds the same global stream and keeps every process_count-th example
from its process_index, so processes see disjoint rows and masks are still keyed by the global
index; `batch_size` is per process.
"""

import functools
import sys

import grain
import numpy as np

from jaxbert import counters, masking
from jaxbert.data import tokenizer
from jaxbert.data.packing import PACKS

ORDERS = ("shuffle", "curriculum")


def mask_fn(seed: int, mask_rate: float, vocab_size: int, seq_len: int, pack: str = "stream"):
  """The corruption used by training and held-out evaluation alike:
  fn(rows [B, L], indices=example indices [B]) -> masked batch."""
  if pack not in PACKS:
    raise ValueError(f"pack must be one of {PACKS}, got {pack!r}")
  fn = functools.partial(
      masking.mask_rows, seed=seed, count=masking.num_masked(mask_rate, seq_len),
      mask_id=tokenizer.MASK_ID, vocab_size=vocab_size, special_ids=tokenizer.SPECIAL_IDS,
      rate=mask_rate if pack == "sentences" else None)
  return fn if pack == "stream" else functools.partial(_with_attention_mask, fn)


def _with_attention_mask(mask, rows, indices) -> dict:
  out = mask(rows, indices=indices)
  out["attention_mask"] = np.asarray(rows) != tokenizer.PAD_ID
  return out


def _pack(rows, pack: str | None) -> str:
  """How `rows` were cut: as given, else as the store's Rows say; a plain array is a stream."""
  return pack or getattr(rows, "pack", "stream")


def _take(rows, numbers: np.ndarray) -> np.ndarray:
  """rows[numbers] for a numpy array or the store's sharded Rows (which reads only those)."""
  return rows[numbers] if isinstance(rows, np.ndarray) else rows.take(numbers)


_SHUFFLE = 0x53485546464C45  # keeps the epoch orders' keys apart from the masks' keys


class _Batches:
  """Batch b of the endless stream, computed on its own: which rows, read, masked.

  Example j of batch b has the global index g = (b × batch + j) × count + process, its index in
  the single-process stream, so the masks do not depend on how many processes share the data.
  It is row order[g mod n] of epoch g div n, where the order is the rows' curriculum order, or a
  keyed permutation drawn afresh for each epoch.
  """

  def __init__(self, rows, order, mask, seed: int, batch: int, process: int, count: int):
    self.rows, self.order, self.mask, self.seed = rows, order, mask, seed
    self.batch, self.process, self.count = batch, process, count

  def __len__(self) -> int:
    return sys.maxsize  # endless; grain's iterator keeps its position as one integer

  def __getitem__(self, b: int) -> dict:
    index = (b * self.batch + np.arange(self.batch)) * self.count + self.process
    epoch, position = np.divmod(index, len(self.rows))
    if self.order is None:
      numbers = np.empty_like(position)
      for e in np.unique(epoch):  # one epoch, or two where a batch straddles the boundary
        here = epoch == e
        numbers[here] = counters.permute(counters.key(_SHUFFLE, self.seed, e), position[here],
                                         len(self.rows))
    else:
      numbers = self.order[position]
    return self.mask(_take(self.rows, numbers), indices=index)


def curriculum_order(dots: np.ndarray) -> np.ndarray:
  """Row indices by their count of "." tokens, most first; ties keep the store's order."""
  return np.argsort(-np.asarray(dots, np.int64), kind="stable")


def _process() -> tuple[int, int]:
  import jax  # only when not given: the data pipeline itself does not need JAX
  return jax.process_index(), jax.process_count()


def pretraining_batches(rows, *, seed: int, batch_size: int, mask_rate: float, vocab_size: int,
                        threads: int = 4, buffer: int = 16, order: str = "shuffle",
                        process_index: int | None = None, process_count: int | None = None,
                        pack: str | None = None) -> grain.IterDataset:
  """Endless masked batches of `batch_size` rows.

  order="shuffle": a new random order each epoch. order="curriculum": every epoch in the order of
  the rows' count of "." tokens, descending (the cramming recipe's v2 order; needs rows.dots).
  `pack`: how the rows were cut (data.pack); None = as the store's rows say.
  """
  if order not in ORDERS:
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
  if process_index is None or process_count is None:
    process_index, process_count = _process()
  if not len(rows):
    raise ValueError("no rows to draw batches from")
  order_of = curriculum_order(rows.dots) if order == "curriculum" else None
  mask = mask_fn(seed, mask_rate, vocab_size, rows.shape[1], _pack(rows, pack))
  batches = _Batches(rows, order_of, mask, seed, batch_size, process_index, process_count)
  return grain.MapDataset.source(batches).to_iter_dataset(
      grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer))


def heldout_batches(rows, *, seed: int, batch_size: int, mask_rate: float, vocab_size: int,
                    pack: str | None = None):
  """One pass over the held-out rows in order, with masks fixed by `seed`; last batch partial.
  `pack` as for pretraining_batches (a slice of the store's rows is a plain array: give it)."""
  mask = mask_fn(seed, mask_rate, vocab_size, rows.shape[1], _pack(rows, pack))
  for start in range(0, len(rows), batch_size):
    index = np.arange(start, min(start + batch_size, len(rows)))
    yield mask(_take(rows, index), indices=index)
