"""What a run does when its loss stops being finite: stop, or roll back and skip the bad batch.

The loss reaches the host only at log and checkpoint steps (one sync per step would stall the
device), so a non-finite loss is seen some steps after the batch that caused it. Under
`train.on_nonfinite="skip"` the run goes back to its last checkpoint and replays the steps up to
the one where it was seen, checking each against a copy of the state: the step that fails again
is skipped, its batch dropped. `train.max_skips` bounds both the rollbacks and the skips.
"""

import math
import sys

import jax
import jax.numpy as jnp


class NonFiniteLoss(RuntimeError):
  pass


def finite(metrics) -> bool:
  return math.isfinite(metrics["loss"]) and math.isfinite(metrics["param_norm"])


class Rollback:
  """The state of the rollback: how far to replay with care, and what was rolled back or skipped.

  `latest_checkpoint()` gives the step the workdir keeps, for the messages that end a run.
  """

  def __init__(self, train_cfg, latest_checkpoint):
    self.tc, self.latest_checkpoint = train_cfg, latest_checkpoint
    self.careful_until = 0  # steps before this one are replayed with a backup of the state
    self.rollbacks = self.skips = 0
    self.checked = 0  # the last step whose loss was seen finite

  def _kept(self) -> str:
    last = self.latest_checkpoint()
    return "the workdir keeps no checkpoint" if last is None else \
        f"the workdir keeps checkpoint step {last}"

  def backup(self, state, step: int):
    """A copy of `state` to fall back on if step `step` + 1 is being replayed, else None."""
    return jax.tree.map(jnp.copy, state) if step < self.careful_until else None

  def skip(self, step: int, rows: int):
    """Replayed step `step` failed again: its batch of `rows` rows is skipped, or, past
    train.max_skips, NonFiniteLoss."""
    self.skips += 1
    print(f"step {step}: loss is not finite again; skipped its batch of {rows} rows "
          f"({self.skips} skipped so far)", file=sys.stderr, flush=True)
    if self.skips > self.tc.max_skips:
      raise NonFiniteLoss(f"loss is not finite at step {step} after skipping {self.skips - 1} "
                          "batches (train.max_skips); lower optim.peak_lr or raise "
                          f"optim.warmup; {self._kept()}")

  def check(self, step: int, metrics: dict) -> str | None:
    """None if step `step`'s metrics are finite. Otherwise what went wrong, to roll back to the
    last checkpoint; or NonFiniteLoss under train.on_nonfinite="stop" or past train.max_skips."""
    if finite(metrics):
      self.checked = step
      return None
    where = (f"loss {metrics['loss']}, param norm {metrics['param_norm']} at step {step}"
             + (f" (finite at step {self.checked})" if self.checked else ""))
    if self.tc.on_nonfinite == "stop" or self.rollbacks >= self.tc.max_skips:
      raise NonFiniteLoss(
          f"{where}; lower optim.peak_lr or raise optim.warmup"
          + ("" if self.tc.on_nonfinite == "stop" else f", after {self.rollbacks} rollbacks")
          + f"; {self._kept()}")
    self.rollbacks += 1
    self.careful_until = step
    return where

  def restarted(self, step: int):
    """The run went back to checkpoint step `step`, known finite."""
    self.checked = step
