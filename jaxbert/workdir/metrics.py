"""WORKDIR/metrics.jsonl: one JSON object per line, the public record of a run.

Every line has "kind" ("start", "train", "eval") and "step". A resumed run first drops the lines
past its checkpoint step, so the file never holds two records of one step from different histories.
"""

import json
import os

from jaxbert import files

from . import events


def _path(workdir: str) -> str:
  return os.path.join(workdir, "metrics.jsonl")


def write(workdir: str, record: dict):
  with open(_path(workdir), "a") as f:
    f.write(json.dumps(record) + "\n")


def read(workdir: str) -> list[dict]:
  if not os.path.exists(_path(workdir)):
    return []
  with open(_path(workdir)) as f:
    return [json.loads(line) for line in f if line.strip()]


def drop_after(workdir: str, step: int):
  """Removes records of steps after `step` (written before a crash, about to be redone)."""
  records = read(workdir)
  kept = [r for r in records if r["step"] <= step]
  if len(kept) == len(records):
    return
  files.write_text(_path(workdir), "".join(json.dumps(r) + "\n" for r in kept))


class Records:
  """A run's records as it writes them: metrics.jsonl and TensorBoard, by the first process only
  (`primary`); the others write nothing."""

  def __init__(self, workdir: str, primary: bool, step: int):
    self.workdir, self.primary = workdir, primary
    self.tensorboard = events.Events(workdir, step) if primary else events.Nowhere()

  def write(self, record: dict):
    if self.primary:
      write(self.workdir, record)
      self.tensorboard.write(record)

  def rewind(self, step: int):
    """Forgets what was recorded after `step`, the checkpoint the run goes on from."""
    if self.primary:
      drop_after(self.workdir, step)
    self.tensorboard.restart(step)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.tensorboard.close()
