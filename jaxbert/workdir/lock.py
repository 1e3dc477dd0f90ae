"""WORKDIR/.lock: one run writes a workdir at a time."""

import os
import sys
import tempfile

import filelock


class WorkdirError(RuntimeError):
  """The workdir cannot be written, or another run holds it."""


class Lock:
  """Creates the workdir and holds WORKDIR/.lock while a run writes it; a second run is refused.

  An flock (filelock), not a pid file: the OS releases it however its holder dies, so a stale
  lock never blocks. The file says who holds it, for the refusal; a clean release empties it, so
  a non-empty file found on taking the lock was left by a killed run. The file is kept: deleting
  it would let a run that opened the old one and a run that creates a new one both hold "the"
  lock.
  """

  def __init__(self, workdir: str):
    self.workdir, self.path, self.lock = workdir, os.path.join(workdir, ".lock"), None

  def _read(self) -> str:
    try:
      with open(self.path, errors="replace") as f:
        return f.read(256).strip()
    except FileNotFoundError:
      return ""

  def __enter__(self):
    try:
      os.makedirs(self.workdir, exist_ok=True)
      tempfile.TemporaryFile(dir=self.workdir).close()  # a read-only workdir fails here, not later
    except OSError as e:
      raise WorkdirError(f"cannot write to the workdir {self.workdir}: {e.strerror}") from e
    previous = self._read()  # the file is emptied once the lock is taken
    holder = f"pid {os.getpid()} on {os.uname().nodename}\n".encode()
    lock = filelock.FileLock(self.path, timeout=0, fallback_to_soft=False, preserve_lock_file=True,
                             on_acquired=lambda fd: os.pwrite(fd, holder, 0))
    try:
      lock.acquire()
    except filelock.Timeout:
      raise WorkdirError(f"the workdir {self.workdir} is in use by {self._read() or 'another run'}"
                         "; wait for it to end or use another --workdir") from None
    except OSError as e:  # a filesystem without locks (some network mounts): go on, unguarded
      print(f"warning: cannot lock {self.path} ({e.strerror}); nothing stops a second run from "
            "writing this workdir at the same time", file=sys.stderr, flush=True)
      return self
    if previous:
      print(f"taking over {self.path} from {previous}, which ended without releasing it",
            file=sys.stderr, flush=True)
    self.lock = lock
    return self

  def __exit__(self, *exc):
    if self.lock is not None:
      os.truncate(self.path, 0)  # still held: a clean release leaves no holder's name
      self.lock.release()
