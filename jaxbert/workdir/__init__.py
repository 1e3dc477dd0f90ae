"""The workdir of a run: its config.json, what identifies it, its lock, and the data it reads.

  WORKDIR/config.json     the resolved config (read_config, write_config)
  WORKDIR/tokenizer.json  the tokenizer its checkpoints were trained with (check_tokenizer)
  WORKDIR/.lock           held by the run writing the workdir (Lock)
  WORKDIR/metrics.jsonl   metrics.py; WORKDIR/tensorboard/ events.py; report.md report.py
  WORKDIR/checkpoints/    checkpoint.py; `pretrained` reads their params alone
"""
import json
import os
import sys
import tempfile
import typing

import filelock
import jax
import ml_collections
import numpy as np

from jaxbert import checkpoint
from jaxbert import config as config_lib
from jaxbert.model import MaskedLM, ModelConfig


class IncompatibleCheckpoint(ValueError):
  """The config differs from the workdir's in a key that identifies the run (config.RUN_KEYS)."""


class WorkdirError(RuntimeError):
  """The workdir cannot be written, or another run holds it."""


# --- config.json and the run's identity ---------------------------------------------------------

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
  """The keys of config.RUN_KEYS whose values differ between two config dicts."""
  return [k for k in config_lib.RUN_KEYS
          if _canonical(k, _get(saved, k)) != _canonical(k, _get(current, k))]


def check_compatible(workdir: str, config: ml_collections.ConfigDict):
  """Refuses a config that changes what identifies the run whose checkpoints `workdir` holds."""
  differing = incompatible_keys(read_config(workdir).to_dict(), config.to_dict())
  if differing:
    raise IncompatibleCheckpoint(
        f"{workdir} holds a checkpoint of another run: {', '.join(differing)} "
        f"{'differs' if len(differing) == 1 else 'differ'} from its config.json; use a new "
        "--workdir, or restore the original values to resume")


# --- the lock -----------------------------------------------------------------------------------

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


# --- the data a workdir reads -------------------------------------------------------------------

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


class Pretrained(typing.NamedTuple):
  config: ml_collections.ConfigDict  # the workdir's, resolved for this machine
  model: ModelConfig  # of the checkpoint, computing in this machine's dtype
  params: dict  # MaskedLM's params
  step: int  # the checkpoint step
  meta: dict  # what the checkpoint recorded beside the state


def pretrained(workdir: str, step: int | None = None) -> Pretrained:
  """The params of a workdir's checkpoint (latest by default), read without the optimizer.

  The compute dtype is resolved for this machine, not the one that trained: params are float32
  whatever made them. Nothing in the workdir is written or moved.
  """
  config = read_config(workdir)
  config.model.dtype = "auto"
  config = config_lib.resolve(config)
  try:
    model_config = ModelConfig.from_dict(config.model)
  except ValueError as e:
    raise config_lib.ConfigError(f"{workdir}/config.json: model: {e}") from e
  tokens = jax.ShapeDtypeStruct((1, config.data.seq_len), jax.numpy.int32)
  abstract = jax.eval_shape(lambda: MaskedLM(model_config).init(jax.random.key(0), tokens))
  with checkpoint.Checkpoints(workdir, writer=False) as ckpts:
    if ckpts.latest_step() is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint yet; train first")
    params, meta = ckpts.restore_params(step, abstract["params"])
  return Pretrained(config, model_config, params, int(meta["step"]), meta)


POOLER_FILE = "pooler.safetensors"  # an imported BERT's pooler, beside the checkpoint


def pooler(workdir: str) -> dict | None:
  """The BERT pooler an imported workdir keeps (hf.import_workdir writes it), {"kernel", "bias"}
  float32; None for a workdir that holds none (jaxbert's own pretraining trains no pooler)."""
  path = os.path.join(workdir, POOLER_FILE)
  if not os.path.exists(path):
    return None
  import safetensors.numpy  # only where a pooler was imported

  try:
    tensors = safetensors.numpy.load_file(path)
  except Exception as e:  # safetensors raises its own error, ValueError or TypeError
    tensors = {"unreadable": e}
  if set(tensors) != {"kernel", "bias"}:
    raise config_lib.ConfigError(f"{path} is not a pooler's kernel and bias; remove it, or "
                                 "import the model again")
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}
