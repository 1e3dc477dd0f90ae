"""Checkpoints of a run: train state, data-iterator position and run metadata, through orbax.

A checkpoint step is one orbax directory holding three items: `state` (params, optimizer state,
step), `data` (the grain iterator's position) and `meta` (elapsed budget seconds, tokens seen, the
config). Orbax writes each step aside and renames it when complete, so a run killed mid-save
leaves the previous step as the latest.
"""

import json
import os

import grain
import ml_collections
import orbax.checkpoint as ocp

# Settings that fix the shape of the params or the meaning of token ids: a checkpoint made under
# other values cannot be resumed, whatever else changes (budget, logging, optimizer...).
IDENTITY_KEYS = (
    "model.arch", "model.vocab_size", "model.num_layers", "model.hidden_size", "model.num_heads",
    "model.ffn_size", "model.max_len",
    "data.sources", "data.seq_len", "data.lowercase", "data.remove_stopwords",
    "data.remove_punctuation", "data.max_token_char_ratio", "data.max_documents",
)


class IncompatibleCheckpoint(ValueError):
  pass


def _get(d: dict, dotted: str):
  for part in dotted.split("."):
    d = d.get(part) if isinstance(d, dict) else None
  return d


def incompatible_keys(saved: dict, current: dict) -> list[str]:
  """The identity keys whose values differ between two config dicts."""
  return [k for k in IDENTITY_KEYS if _get(saved, k) != _get(current, k)]


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
    return ml_collections.ConfigDict(json.load(f))


def write_config(workdir: str, config: ml_collections.ConfigDict):
  path = os.path.join(workdir, "config.json")
  with open(path + ".tmp", "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  os.replace(path + ".tmp", path)


class Checkpoints:
  """The workdir's checkpoint directory: save every so often, restore the latest or a given step."""

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, iterator, meta: dict):
    """Starts an asynchronous save; the previous one is finished first."""
    self.manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(iterator),
        meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int | None, abstract_state, iterator=None):
    """(state, meta) at `step` (latest if None); the iterator, if given, is moved in place."""
    step = self.latest_step() if step is None else step
    if step not in self.steps():
      raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}; "
                              f"available: {self.steps() or 'none'}")
    items = dict(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    if iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], restored["meta"]

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()
