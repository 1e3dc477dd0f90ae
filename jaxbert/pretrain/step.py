"""The one jitted update step of pretraining, and the batch ramp that sets its size.

The step scans over micro-batches summing gradients, token-weighted loss and token counts, and
divides once, so a step of k micro-batches equals one of their concatenation; the learning rate is
a function of progress t, passed in. Dropout randomness is fold_in(seed key, step, micro-batch),
so a resumed step repeats exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbert import optim

from . import parallel
from .loss import cross_entropy
from .state import TrainState


# ---------------------------------------------------------------------------------------------
# The batch ramp.

def accumulation_levels(train_cfg) -> list[int]:
  """Micro-batches per step the ramp may use; each distinct value compiles the step once."""
  top = train_cfg.batch_size // train_cfg.micro_batch
  levels = np.round(np.linspace(1, top, max(1, min(train_cfg.ramp_levels, top))))
  return sorted({int(x) for x in levels} | {top})


def accumulation(train_cfg, t: float) -> int:
  """Micro-batches per step at progress t: the batch grows linearly in t until `ramp_until`."""
  levels = accumulation_levels(train_cfg)
  if train_cfg.ramp_until <= 0:
    return levels[-1]
  target = 1 + (levels[-1] - 1) * min(t / train_cfg.ramp_until, 1.0)
  return max(level for level in levels if level <= target + 1e-9)


# ---------------------------------------------------------------------------------------------
# The update step.

def mlm_loss(model, params, batch, rng, deterministic):
  """Summed (not averaged) cross-entropy over predicted positions, with weight and hit counts."""
  # Sentence rows end in [PAD]s, which their batches mask out; stream batches have no mask.
  logits = model.apply({"params": params}, batch["inputs"], batch["positions"],
                       attention_mask=batch.get("attention_mask"), deterministic=deterministic,
                       rngs={"dropout": rng})
  w = batch["weights"]
  ce, hit = cross_entropy(logits, batch["targets"])
  return jnp.sum(ce * w), (jnp.sum(w), jnp.sum(hit * w))


def make_train_step(model, tx, config, shardings=None):
  """The jitted update: scan over micro-batches summing gradients, divide once, apply.

  `batches` holds [n, micro_batch, ...] arrays; `t` is the progress that sets the learning rate.
  `shardings` = (state shardings, batch sharding) places them on a device mesh (parallel.py);
  None leaves placement to jax (one device).
  """
  key = jax.random.fold_in(jax.random.key(config.seed), 1)  # init uses fold_in(seed, 0)
  deterministic = config.model.dropout == 0
  loss_and_grad = jax.value_and_grad(
      lambda p, b, r: mlm_loss(model, p, b, r, deterministic), has_aux=True)

  def step(state, batches, t):
    rng = jax.random.fold_in(key, state.step)

    def accumulate(carry, inputs):
      grads, loss, weight, hits = carry
      i, batch = inputs
      (l, (w, h)), g = loss_and_grad(state.params, batch, jax.random.fold_in(rng, i))
      return (jax.tree.map(jnp.add, grads, g), loss + l, weight + w, hits + h), None

    n = batches["inputs"].shape[0]
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grads, loss, weight, hits), _ = jax.lax.scan(
        accumulate, (zeros, 0.0, 0.0, 0.0), (jnp.arange(n), batches))
    # Token-weighted mean over the whole step, however it was split into micro-batches.
    weight = jnp.maximum(weight, 1.0)
    grads = jax.tree.map(lambda g: g / weight, grads)

    lr = optim.learning_rate(config.optim, t)
    opt_state = optim.set_learning_rate(state.opt_state, lr)
    updates, opt_state = tx.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(loss=loss / weight, accuracy=hits / weight, lr=lr,
                   grad_norm=optax.tree.norm(grads), update_norm=optax.tree.norm(updates),
                   param_norm=optax.tree.norm(params))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  if shardings is None:
    return jax.jit(step, donate_argnums=(0,))
  state_sharding, batch_sharding = shardings
  return jax.jit(step, donate_argnums=(0,), in_shardings=(state_sharding, batch_sharding, None),
                 out_shardings=(state_sharding, parallel.replicated(batch_sharding.mesh)))
