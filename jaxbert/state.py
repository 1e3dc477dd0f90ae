"""The train state and how to build it: model, optimizer and an init function of a key."""

import flax
import jax
import jax.numpy as jnp
import optax

from jaxbert import checkpoint, masking, optim
from jaxbert import config as config_lib
from jaxbert.config import ConfigError
from jaxbert.model import MaskedLM, ModelConfig


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState


def build(config):
  """(model, optimizer, init function of a key) for a resolved config."""
  try:
    model = MaskedLM(ModelConfig.from_dict(config.model))
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
  """Key of the initial params; the train step derives its own stream (see train.py)."""
  return jax.random.fold_in(jax.random.key(config.seed), 0)


def restore(workdir: str, step: int | None = None):
  """(config, model, params, meta) of a workdir's checkpoint (latest by default), for readers.

  The compute dtype is resolved for this machine, not the one that trained: params are float32
  whatever made them. Nothing in the workdir is written or moved.
  """
  config = checkpoint.read_config(workdir)
  config.model.dtype = "auto"
  config = config_lib.resolve(config)
  model, _, init = build(config)
  with checkpoint.Checkpoints(workdir, config.train.keep, writer=False) as ckpts:
    if ckpts.latest_step() is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint yet; train first")
    state, meta = ckpts.restore_for_reading(step, jax.eval_shape(init, init_key(config)))
  return config, model, state.params, meta
