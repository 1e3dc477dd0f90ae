"""The train state and how to build it: model, optimizer and an init function of a key; or, for
continued pretraining (config init_from), a state of another workdir's latest params.
"""

import flax
import jax
import jax.numpy as jnp
import optax

from jaxbert import cpu, masking, optim
from jaxbert import workdir as workdir_lib
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


# --- continued pretraining: config init_from (workdir.source reads and checks it) -------------

def from_source(src: workdir_lib.Source, tx, abstract_state, shardings) -> TrainState:
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
