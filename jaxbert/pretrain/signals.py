"""SIGTERM and SIGINT stop a run cleanly: the loop saves a checkpoint at the next step and ends."""

import os
import signal
import sys
import threading


class Interrupted(RuntimeError):
  """Training stopped on SIGTERM or SIGINT after saving a checkpoint; `signum` says which."""

  def __init__(self, message, signum):
    super().__init__(message)
    self.signum = signum


class StopOnSignal:
  """SIGTERM/SIGINT ask the loop to stop at the next step boundary; a second one exits at once."""

  def __init__(self):
    self.signum = None

  def _handle(self, signum, frame):
    if self.signum is not None:
      os._exit(128 + signum)  # the user insists: no checkpoint, no cleanup
    self.signum = signum
    print(f"\n{signal.Signals(signum).name}: saving a checkpoint, then stopping "
          "(send it again to stop at once)", file=sys.stderr, flush=True)

  def interrupted(self, step: int) -> Interrupted:
    """The error that ends a run stopped at `step`, its checkpoint saved."""
    signum = self.signum or signal.SIGTERM  # another process of the run was signalled
    return Interrupted(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint "
                       "saved: rerun the same command to resume", signum)

  def __enter__(self):
    # Handlers can only be set from the main thread; elsewhere (e.g. a notebook worker) the
    # process keeps its default behaviour.
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
