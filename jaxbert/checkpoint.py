"""Checkpoints of a run through orbax: train state, data-iterator position and run metadata.

A checkpoint step is one orbax directory holding three items: `state` (params, optimizer state,
step), `data` (the grain iterator's position) and `meta` (elapsed budget seconds, tokens seen, the
config). Orbax writes each step aside and renames it when complete, so a run killed mid-save
leaves the previous step as the latest. Readers (evaluation, fine-tuning, export) restore the
params alone, so they need not know the optimizer that made them.
"""

import logging
import os
import re
import shutil
import sys
import warnings

import grain
import jax
import orbax.checkpoint as ocp


class DamagedCheckpoint(RuntimeError):
  """No checkpoint step of the workdir can be restored."""


class SaveFailed(RuntimeError):
  """A checkpoint could not be written (a full disk, a quota); the half-written step is gone."""


def has_checkpoint(workdir: str) -> bool:
  """Whether the workdir holds a finished checkpoint step (orbax names them by the step alone)."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _reason(e: BaseException) -> str:
  """The first line of the innermost cause: tensorstore's wrapper messages name no file. An OS
  error inside tensorstore's long message (a full disk, say) is the reason itself."""
  while e.__cause__ is not None:
    e = e.__cause__
  code = re.search(r"\[os_error_code='?(\d+)'?\]", str(e))
  if code:
    return f"OSError: {os.strerror(int(code.group(1)))}"
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def _quiet_failed_io():
  """A failed save or restore leaves orbax writes and reads in flight: they fail as "unraisable"
  or "never retrieved", call back into its closed event loop, or are dropped unawaited at exit,
  each printing a traceback or warning after the error that was reported, which should be the
  last thing a user reads. Filters only those, once per process (jaxbert has no coroutines)."""
  previous = sys.unraisablehook
  if getattr(previous, "jaxbert_filter", False):
    return

  def hook(unraisable):
    e, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
    closed_loop = isinstance(e, RuntimeError) and str(e) == "Event loop is closed"
    if not closed_loop and f"{os.sep}orbax{os.sep}" not in getattr(code, "co_filename", ""):
      previous(unraisable)

  hook.jaxbert_filter = True
  sys.unraisablehook = hook
  warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)
  logging.getLogger("asyncio").addFilter(lambda record: not (
      "exception was never retrieved" in record.getMessage()
      and any(word in record.getMessage() for word in ("orbax", "OCDBT", "TensorStore"))))


class Checkpoints:
  """The workdir's checkpoint directory: save every so often, restore the latest or a given step."""

  def __init__(self, workdir: str, keep: int = 3, writer: bool = True):
    """`writer`: the run that owns the workdir (holding its lock). It removes the half-written
    steps of a killed save; a reader must not, since the owner may be writing one right now."""
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=writer, cleanup_tmp_directories=writer))
    self._pending = None  # the step of a save under way

  def steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, iterator, meta: dict):
    """Starts an asynchronous save; the previous one is finished first."""
    self.wait()
    self._pending = step
    items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    if iterator is not None:  # None: a step-0 state that no data has reached (an import)
      items["data"] = grain.checkpoint.CheckpointSave(iterator)
    try:
      self.manager.save(step, force=True, args=ocp.args.Composite(**items))
    except Exception as e:  # orbax and tensorstore wrap OSErrors in anything
      raise self._save_failed(e) from e

  def _save_failed(self, e: BaseException) -> SaveFailed:
    """Removes what the failed save of step `_pending` wrote; the error to raise."""
    _quiet_failed_io()
    step, self._pending = self._pending, None
    for name in os.listdir(self.directory):
      if name.startswith(f"{step}.orbax-checkpoint-tmp"):
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    kept = sorted(int(n) for n in os.listdir(self.directory) if n.isdigit())
    return SaveFailed(
        f"could not write checkpoint step {step} to {self.directory} ({_reason(e)}); is the disk "
        f"full? Its partial files were removed; the workdir keeps "
        + (f"checkpoint step {kept[-1]}" if kept else "no checkpoint")
        + ": make room, then rerun the same command to resume")

  def restore(self, step: int | None, abstract_state, iterator=None):
    """(state, meta) at `step` (latest if None); the iterator, if given, is moved in place."""
    step = self.latest_step() if step is None else step
    if step not in self.steps():
      raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}; "
                              f"available: {self.steps() or 'none'}")
    items = dict(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    if iterator is not None and os.path.isdir(os.path.join(self.directory, str(step), "data")):
      items["data"] = grain.checkpoint.CheckpointRestore(iterator)  # else it stays at the start
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], restored["meta"]

  def restore_params(self, step: int | None, abstract_params):
    """(params, meta) at `step` (latest if None): the state's params alone, read as
    `abstract_params` gives them; the optimizer state stays on disk. Failures as in
    restore_for_reading."""
    _quiet_failed_io()
    step = self.latest_step() if step is None else step
    if step not in self.steps():
      raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}; "
                              f"available: {self.steps() or 'none'}")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    item = {"params": abstract_params}
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), item)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.PyTreeRestore(item=item, restore_args=restore_args,
                                       partial_restore=True),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax and tensorstore raise anything from KeyError to Exception
      raise DamagedCheckpoint(f"checkpoint step {step} in {self.directory} cannot be restored "
                              f"({_reason(e)}); choose another with --step (steps: "
                              f"{self.steps()})") from e
    return restored["state"]["params"], restored["meta"]

  def restore_latest_good(self, abstract_state, iterator=None):
    """(step, state, meta) of the latest step that restores; None if there is no step.

    Steps after it that fail (truncated or deleted files) are renamed N.damaged, never deleted,
    so that orbax no longer lists them. If no step restores, the cause may be ours (a changed
    optimizer, say) rather than the files: nothing is moved and DamagedCheckpoint says why.
    """
    _quiet_failed_io()
    failures = []
    for step in sorted(self.steps(), reverse=True):
      try:
        state, meta = self.restore(step, abstract_state, iterator)
      except Exception as e:  # orbax and tensorstore raise anything from KeyError to Exception
        failures.append((step, _reason(e)))
        continue
      for bad, reason in failures:
        aside = self._move_aside(bad)
        print(f"checkpoint step {bad} is damaged ({reason}); resuming from step {step}; "
              f"moved it to {aside}", file=sys.stderr, flush=True)
      self.manager.reload()  # it caches the step list
      return step, state, meta
    if failures:
      raise DamagedCheckpoint(
          f"no checkpoint step in {self.directory} can be restored: "
          + "; ".join(f"step {s}: {r}" for s, r in failures)
          + "; nothing was moved or deleted; use a new --workdir to start over")
    return None

  def _move_aside(self, step: int) -> str:
    path = os.path.join(self.directory, f"{step}.damaged")
    n = 1
    while os.path.exists(path):  # a step damaged before, in an earlier run
      n += 1
      path = os.path.join(self.directory, f"{step}.damaged{n}")
    os.rename(os.path.join(self.directory, str(step)), path)
    return path

  def wait(self):
    """Blocks until the last save is complete; SaveFailed if it could not be."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      if self._pending is None:
        raise
      raise self._save_failed(e) from e
    self._pending = None

  def close(self):
    try:
      self.wait()
    finally:
      self.manager.close()

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    try:
      self.close()
    except SaveFailed:
      if exc is None:  # otherwise the exception already on its way is the one to report
        raise
