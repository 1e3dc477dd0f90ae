"""The train state and how to build it: model, optimizer and an init function of a key; or, for
continued pretraining (config init_from), the params of another workdir's latest checkpoint.
"""

import os
import typing

import flax
import jax
import jax.numpy as jnp
import optax

from jaxbert import checkpoint, cpu, masking, optim
from jaxbert import config as config_lib
from jaxbert import workdir as workdir_lib
from jaxbert.config import ConfigError
from jaxbert.data import tokenizer as tokenizer_lib
from jaxbert.model import MaskedLM, ModelConfig


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState


def build(config):
  """(model, optimizer, init function of a key) for a resolved config."""
  try:
    model = MaskedLM(cpu.tuned(ModelConfig.from_dict(config.model)))
  except ValueError as e:
    raise ConfigError(f"model: {e}") from e
  tx = optim.make(config.optim)
  count = masking.num_masked(config.data.mask_rate, config.data.seq_len)

  def init(key):
    tokens = jnp.zeros((1, config.data.seq_len), jnp.int32)
    params = model.init({"params": key}, tokens, jnp.zeros((1, count), jnp.int32))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  return model, tx, init


def init_key(config):
  """Key of the initial params; the train step derives its own stream (see step.py)."""
  return jax.random.fold_in(jax.random.key(config.seed), 0)


# --- continued pretraining: config init_from ----------------------------------------------------

# What a run started from init_from shares with it: the shape of the params it takes over, and
# data.lowercase, which says what the tokenizer it takes over does (an export writes it beside).
SOURCE_KEYS = (*(k for k in config_lib.RUN_KEYS if k.startswith("model.")), "data.lowercase")


class Source(typing.NamedTuple):
  """The workdir a run starts from (init_from): its latest params and its tokenizer."""
  path: str  # as init_from gives it
  step: int  # the checkpoint step the params come from
  params: dict  # MaskedLM's params, host arrays
  tokenizer: str  # its tokenizer.json, which this run must encode with


def source(config) -> Source:
  """Reads and checks config.init_from, a workdir of a jaxbert run or of --mode=import.

  ConfigError (one line, naming init_from) unless it holds a checkpoint, its model fields and
  data.lowercase equal the config's, and data.tokenizer is "" or its tokenizer.json. Nothing is
  written.
  """
  path = config.init_from
  if not os.path.isdir(path):
    raise ConfigError(f"init_from={path}: no such directory; give the workdir of a jaxbert run "
                      "(or of run.py --mode=import), or \"\" to start from random init")
  if not os.path.exists(os.path.join(path, "config.json")):
    raise ConfigError(f"init_from={path}: {path} holds no config.json, so no jaxbert run; give "
                      "the workdir of a run (or of run.py --mode=import)")
  if not checkpoint.has_checkpoint(path):
    raise ConfigError(f"init_from={path} holds no checkpoint yet; train it first (python run.py "
                      f"--workdir={path}), or start from random init with init_from=\"\"")
  theirs = workdir_lib.read_config(path).to_dict()
  ours = config.to_dict()
  for key in SOURCE_KEYS:
    a, b = _get(theirs, key), _get(ours, key)
    if a != b:
      raise ConfigError(f"init_from={path} has {key}={a} but this config has {b}; set "
                        f"--config.{key}={a}, the source's value: the run takes over its params "
                        "and tokenizer")
  tokenizer = os.path.join(path, "tokenizer.json")
  if not os.path.isfile(tokenizer):
    raise ConfigError(f"init_from={path}: {tokenizer}, the tokenizer its checkpoints were trained "
                      "with, does not exist; give a workdir that keeps one")
  if config.data.tokenizer:
    given = tokenizer_lib.given(config.data.tokenizer, config.model.vocab_size)
    if not _same_bytes(given, tokenizer):
      raise ConfigError(f"data.tokenizer={config.data.tokenizer!r} is not {tokenizer}, the "
                        f"tokenizer init_from={path} was trained with; leave data.tokenizer "
                        "empty to encode with it")
  try:
    saved = workdir_lib.pretrained(path)
  except checkpoint.DamagedCheckpoint as e:
    raise checkpoint.DamagedCheckpoint(
        f"init_from={path}: its latest checkpoint cannot be restored ({checkpoint._reason(e)}); "
        f"resume or retrain {path}, or give another init_from") from e
  return Source(path, saved.step, jax.device_get(saved.params), tokenizer)


def _get(d: dict, dotted: str):
  for part in dotted.split("."):
    d = d.get(part) if isinstance(d, dict) else None
  return d


def _same_bytes(a: str, b: str) -> bool:
  with open(a, "rb") as f, open(b, "rb") as g:
    return f.read() == g.read()


def from_source(src: Source, tx, abstract_state, shardings) -> TrainState:
  """A step-0 train state of the source's params and a fresh optimizer state, placed as
  `shardings` (the state's, as `abstract_state`) say; ConfigError if the params do not fit."""
  shapes = lambda tree: jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)
  if shapes(src.params) != shapes(abstract_state.params):  # a config.json edited by hand
    raise ConfigError(f"init_from={src.path}: the params of its checkpoint step {src.step} do "
                      "not form the model its config.json describes")
  # Each process places the shards its devices hold, so this holds with several processes and
  # with train.fsdp alike.
  params = jax.tree.map(
      lambda x, s: jax.make_array_from_callback(x.shape, s, lambda index: x[index]),
      src.params, shardings.params)
  fresh = lambda p: TrainState(step=jnp.zeros((), jnp.int32), params=p, opt_state=tx.init(p))
  return jax.jit(fresh, out_shardings=shardings)(params)
