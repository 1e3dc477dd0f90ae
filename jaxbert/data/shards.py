"""A token store's rows on disk: SPLIT-NNNNN.npy shards written by streaming, read as one array.

Each shard is a plain .npy file of [rows, seq_len] token ids. A writer does not know how many
rows a shard will hold until it is full, so it writes the header first with a row count of 0 and
rewrites it when the shard closes: numpy's format leaves room in the header for the first axis to
grow (to 21 digits), so the rewritten header has the same length and the rows need not move.
"""
import os

import numpy as np

SHARD_ROWS = 1 << 20  # rows per shard file (256 MB at 128 uint16 tokens)


def _header(dtype, shape) -> dict:
  return {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
          "shape": tuple(shape)}


class ShardWriter:
  """Appends rows to SPLIT-NNNNN.npy files of at most `shard_rows` rows each."""

  def __init__(self, out: str, split: str, seq_len: int, dtype):
    self.out, self.split, self.L, self.dtype = out, split, seq_len, np.dtype(dtype)
    self.shard_rows, self.shards, self.f, self.rows = SHARD_ROWS, [], None, 0

  def _open(self, name: str):
    f = open(os.path.join(self.out, name), "wb")
    np.lib.format.write_array_header_1_0(f, _header(self.dtype, (0, self.L)))
    self.data_offset = f.tell()
    return f

  def write(self, rows: np.ndarray) -> None:
    while len(rows):
      if self.f is None:
        name = f"{self.split}-{len(self.shards):05d}.npy"
        self.shards.append({"file": name, "rows": 0})
        self.f = self._open(name)
      take = min(len(rows), self.shard_rows - self.shards[-1]["rows"])
      self.f.write(np.ascontiguousarray(rows[:take], self.dtype).tobytes())
      self.shards[-1]["rows"] += take
      self.rows += take
      rows = rows[take:]
      if self.shards[-1]["rows"] == self.shard_rows:
        self._finish()

  def _finish(self) -> None:
    self.f.seek(0)
    np.lib.format.write_array_header_1_0(self.f, _header(self.dtype, (self.shards[-1]["rows"],
                                                                      self.L)))
    if self.f.tell() != self.data_offset:  # numpy changed its header padding: rows would move
      raise RuntimeError(f"the .npy header of {self.f.name} changed length when rewritten")
    self.f.close()
    self.f = None

  def close(self) -> list[dict]:
    if self.f is not None:
      self._finish()
    if not self.shards:  # an empty split still has one (empty) shard, so loading is uniform
      self.shards.append({"file": f"{self.split}-00000.npy", "rows": 0})
      self.f = self._open(self.shards[0]["file"])
      self._finish()
    return self.shards


class Rows:
  """Read-only [rows, seq_len] view over the memory-mapped shards of one split."""

  def __init__(self, shards: list[np.ndarray], seq_len: int, dtype, dots=None,
               pack: str = "stream"):
    self.shards = shards
    self.dots = dots  # per-row count of "." tokens, or None
    self.pack = pack  # how the rows were cut (packing.py): the loader masks them accordingly
    self.offsets = np.cumsum([0] + [len(s) for s in shards])
    self.shape = (int(self.offsets[-1]), seq_len)
    self.dtype = np.dtype(dtype)
    self.size = self.shape[0] * seq_len

  @classmethod
  def load(cls, directory: str, shards: list[dict], seq_len: int, dtype, dots: str | None,
           pack: str = "stream"):
    """The rows of `shards` (a manifest's list) in `directory`, memory-mapped."""
    arr = lambda name: np.load(os.path.join(directory, name), mmap_mode="r")
    return cls([arr(s["file"]) for s in shards], seq_len, dtype,
               arr(dots) if dots is not None else None, pack)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, i):
    if isinstance(i, slice):
      start, stop, step = i.indices(len(self))
      if step != 1:
        return np.stack([self[j] for j in range(start, stop, step)] or [self._empty()])
      parts = []
      for s, shard in enumerate(self.shards):
        lo, hi = max(start, self.offsets[s]), min(stop, self.offsets[s + 1])
        if lo < hi:
          parts.append(shard[lo - self.offsets[s]:hi - self.offsets[s]])
      return np.concatenate(parts) if parts else self._empty()
    i = int(i)
    if i < 0:
      i += len(self)
    if not 0 <= i < len(self):
      raise IndexError(f"row {i} of {len(self)}")
    s = int(np.searchsorted(self.offsets, i, side="right")) - 1
    return self.shards[s][i - self.offsets[s]]

  def take(self, indices) -> np.ndarray:
    """[len(indices), seq_len] rows at `indices` (non-negative), read shard by shard."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if len(indices) and not (0 <= indices.min() and indices.max() < len(self)):
      raise IndexError(f"rows {indices.min()}..{indices.max()} of {len(self)}")
    out = np.empty((len(indices), self.shape[1]), self.dtype)
    shard = np.searchsorted(self.offsets, indices, side="right") - 1
    for s in np.unique(shard):
      here = shard == s
      out[here] = self.shards[s][indices[here] - self.offsets[s]]
    return out

  def _empty(self):
    return np.zeros((0, self.shape[1]), self.dtype)

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out.astype(dtype) if dtype is not None else out
