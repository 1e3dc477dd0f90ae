"""Checkpoints of a run: train state, data-iterator position and run metadata, through orbax.

A checkpoint step is one orbax directory holding three items: `state` (params, optimizer state,
step), `data` (the grain iterator's position) and `meta` (elapsed budget seconds, tokens seen, the
config). Orbax writes each step aside and renames it when complete, so a run killed mid-save
leaves the previous step as the latest.
"""

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import warnings

import grain
import ml_collections
import orbax.checkpoint as ocp

from jaxbert import config as config_lib

# Settings that fix the shape of the params or the meaning of token ids: a checkpoint made under
# other values cannot be resumed, whatever else changes (budget, logging, optimizer...).
IDENTITY_KEYS = (
    "model.arch", "model.vocab_size", "model.num_layers", "model.hidden_size", "model.num_heads",
    "model.ffn_size", "model.max_len",
    "data.sources", "data.weights", "data.seq_len", "data.lowercase", "data.split_sentences",
    "data.remove_stopwords",
    "data.remove_punctuation", "data.max_token_char_ratio", "data.min_chars", "data.dedup",
    "data.max_documents", "data.skip_bad_records", "data.tokenizer_sample_mb", "data.order",
)


class IncompatibleCheckpoint(ValueError):
  pass


class DamagedCheckpoint(RuntimeError):
  """No checkpoint step of the workdir can be restored."""


class WorkdirError(RuntimeError):
  """The workdir cannot be written, or another run holds it."""


class SaveFailed(WorkdirError):
  """A checkpoint could not be written (a full disk, a quota); the half-written step is gone."""


def _get(d: dict, dotted: str):
  for part in dotted.split("."):
    d = d.get(part) if isinstance(d, dict) else None
  return d


def _canonical(key: str, value):
  """Values that mean the same compare equal: sources and weights as a list or a comma string."""
  if key in ("data.sources", "data.weights"):
    from jaxbert.data import sources  # here: the data package is only needed for this
    items = sources.as_list(value)
    try:
      return [float(w) for w in items] if key == "data.weights" else items
    except ValueError:  # not numbers: refused with a clear message when the data is prepared
      return items
  return value


def incompatible_keys(saved: dict, current: dict) -> list[str]:
  """The identity keys whose values differ between two config dicts."""
  return [k for k in IDENTITY_KEYS
          if _canonical(k, _get(saved, k)) != _canonical(k, _get(current, k))]


def has_checkpoint(workdir: str) -> bool:
  """Whether the workdir holds a finished checkpoint step (orbax names them by the step alone)."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir} holds no jaxbert run "
                            "(train first with run.py --config=FILE --workdir=DIR)")
  with open(path) as f:
    saved = json.load(f)
  # Fields added to jaxbert after the run started take their defaults, which keep the old behaviour.
  return ml_collections.ConfigDict(_overlay(config_lib.default().to_dict(), saved))


def _overlay(base: dict, top: dict) -> dict:
  out = dict(base)
  for k, v in top.items():
    out[k] = _overlay(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
  return out


def write_config(workdir: str, config: ml_collections.ConfigDict):
  path = os.path.join(workdir, "config.json")
  with open(path + ".tmp", "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  os.replace(path + ".tmp", path)


def token_store(config, workdir: str):
  """The token store whose ids mean what the checkpoints of `workdir` learned.

  With data.tokenizer set, the store encoded with that tokenizer. Otherwise, once the workdir
  keeps a tokenizer.json (written by training, or by --mode=import), the cached store of the
  config's data settings if it was made with that tokenizer, else a store encoded with it: a
  workdir moved to another machine, or whose cache was cleared, gets the same ids back, although
  training a tokenizer is not bit-reproducible. A new workdir gets the store of its settings,
  which trains its tokenizer. check_tokenizer refuses any mismatch that remains.
  """
  from jaxbert import data  # here: NLTK and the pipeline load only when a store is read

  own = os.path.join(workdir, "tokenizer.json")
  vocab = config.model.vocab_size
  if config.data.tokenizer or not os.path.exists(own):
    return data.prepare(config.data, vocab)
  store = data.cached(config.data, vocab)
  if store is not None and _same_bytes(store.tokenizer_path, own):
    return store
  settings = ml_collections.ConfigDict(config.data.to_dict())
  settings.tokenizer = own
  return data.prepare(settings, vocab)


def _same_bytes(a: str, b: str) -> bool:
  with open(a, "rb") as f, open(b, "rb") as g:
    return f.read() == g.read()


def check_tokenizer(workdir: str, store_tokenizer: str, claim: bool = False):
  """Refuses a token store whose tokenizer is not WORKDIR/tokenizer.json, the one the workdir's
  checkpoints were trained with: the same ids would mean other words. `claim` (the run that owns
  the workdir) copies the store's tokenizer there when the workdir has none yet.

  A store is rebuilt when its cache is cleared or the workdir moves to another machine, and
  tokenizer training is not bit-reproducible across machines, so this can happen to anyone.
  """
  path = os.path.join(workdir, "tokenizer.json")
  with open(store_tokenizer, "rb") as f:
    theirs = f.read()
  if not os.path.exists(path):
    if claim:
      with open(path + ".tmp", "wb") as f:
        f.write(theirs)
      os.replace(path + ".tmp", path)
    return
  with open(path, "rb") as f:
    if f.read() != theirs:
      raise IncompatibleCheckpoint(
          f"{path}, the tokenizer this workdir was trained with, differs from {store_tokenizer}, "
          "the one data.tokenizer gives; leave data.tokenizer empty to use the workdir's own, or "
          "start over in a new --workdir")


class WorkdirLock:
  """Creates the workdir and holds WORKDIR/.lock while a run writes it; a second run is refused.

  An flock, not a pid file: the OS releases it however its holder dies, so a stale lock never
  blocks. The file says who holds it, for the refusal; a clean release empties it, so a non-empty
  file found on taking the lock was left by a killed run. The file is kept: deleting it would let
  a run that opened the old one and a run that creates a new one both hold "the" lock.
  """

  def __init__(self, workdir: str):
    self.workdir, self.path, self.fd = workdir, os.path.join(workdir, ".lock"), None

  def __enter__(self):
    try:
      os.makedirs(self.workdir, exist_ok=True)
      tempfile.TemporaryFile(dir=self.workdir).close()  # a read-only workdir fails here, not later
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise WorkdirError(f"cannot write to the workdir {self.workdir}: {e.strerror}") from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another run"
      os.close(fd)
      raise WorkdirError(f"the workdir {self.workdir} is in use by {holder}; wait for it to end "
                         "or use another --workdir") from None
    except OSError as e:  # a filesystem without locks (some network mounts): go on, unguarded
      print(f"warning: cannot lock {self.path} ({e.strerror}); nothing stops a second run from "
            "writing this workdir at the same time", file=sys.stderr, flush=True)
    previous = os.pread(fd, 256, 0).decode(errors="replace").strip()
    if previous:
      print(f"taking over {self.path} from {previous}, which ended without releasing it",
            file=sys.stderr, flush=True)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    self.fd = fd
    return self

  def __exit__(self, *exc):
    os.ftruncate(self.fd, 0)
    os.close(self.fd)  # releases the flock


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

  def restore_for_reading(self, step: int | None, abstract_state):
    """restore() for evaluation and fine-tuning: a step that fails is a DamagedCheckpoint naming
    it and the other steps; nothing is moved, since readers do not own the workdir."""
    _quiet_failed_io()
    step = self.latest_step() if step is None else step
    try:
      return self.restore(step, abstract_state)
    except FileNotFoundError:
      raise
    except Exception as e:  # orbax and tensorstore raise anything from KeyError to Exception
      raise DamagedCheckpoint(f"checkpoint step {step} in {self.directory} cannot be restored "
                              f"({_reason(e)}); choose another with --step (steps: "
                              f"{self.steps()})") from e

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
