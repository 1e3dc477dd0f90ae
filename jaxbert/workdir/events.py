"""TensorBoard event files in WORKDIR/tensorboard: the metrics.jsonl records as scalars.

Written with tensorboardX, which needs no TensorFlow; `tensorboard --logdir WORKDIR` shows them.
metrics.jsonl stays the record of a run: these files are a view of it for people.
"""

import os

# The fields of each record kind worth a curve (metrics.jsonl documents them all).
SCALARS = {
    "train": ("loss", "accuracy", "lr", "grad_norm", "update_norm", "param_norm", "batch_rows",
              "tokens", "tokens_per_s", "tflops_per_s", "mfu"),
    "eval": ("mlm_loss", "mlm_accuracy", "replaced_accuracy", "unigram_loss",
             "unigram_accuracy"),
}


def load():
  """Imports tensorboardX, which imports torch where it is installed: seconds (5 on a 2-core
  machine with the CPU build), so the trainer does it before its budget clock starts, and modules
  that only read runs never do."""
  import tensorboardX  # noqa: F401


class Events:
  """Appends scalars for the records it is given. A run that resumed or rolled back at step s
  calls `restart(s)`: TensorBoard then drops the curves' points past s, which the run redoes."""

  def __init__(self, workdir: str, step: int):
    self.logdir = os.path.join(workdir, "tensorboard")
    self.writer = None
    self.restart(step)

  def restart(self, step: int):
    from tensorboardX import SummaryWriter

    self.close()
    self.writer = SummaryWriter(logdir=self.logdir, purge_step=step + 1, flush_secs=30)

  def write(self, record: dict):
    for key in SCALARS.get(record["kind"], ()):
      if isinstance(record.get(key), (int, float)):
        self.writer.add_scalar(f"{record['kind']}/{key}", record[key], record["step"])

  def close(self):
    if self.writer is not None:
      self.writer.close()
      self.writer = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class Nowhere:
  """Events for the processes of a multi-process run that do not write the workdir."""

  def write(self, record: dict):
    pass

  def restart(self, step: int):
    pass

  def close(self):
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    pass
