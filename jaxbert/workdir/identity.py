"""What identifies a run: WORKDIR/config.json, and the keys a resumed or continued run must keep."""

import json
import os

import ml_collections

from jaxbert import config as config_lib
from jaxbert import files


class IncompatibleCheckpoint(ValueError):
  """The config differs from the workdir's in a key that identifies the run (config.RUN_KEYS)."""


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
  files.write_text(os.path.join(workdir, "config.json"),
                   config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


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
  same = lambda k: _canonical(k, config_lib.dotted(saved, k)) == _canonical(
      k, config_lib.dotted(current, k))
  return [k for k in config_lib.RUN_KEYS if not same(k)]


def check_compatible(workdir: str, config: ml_collections.ConfigDict):
  """Refuses a config that changes what identifies the run whose checkpoints `workdir` holds."""
  differing = incompatible_keys(read_config(workdir).to_dict(), config.to_dict())
  if differing:
    raise IncompatibleCheckpoint(
        f"{workdir} holds a checkpoint of another run: {', '.join(differing)} "
        f"{'differs' if len(differing) == 1 else 'differ'} from its config.json; use a new "
        "--workdir, or restore the original values to resume")
