"""The train state and how to build it: model, optimizer and an init function of a key."""

import flax
import jax
import jax.numpy as jnp
import optax

from jaxbert import cpu, masking, optim
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
