"""Optimizers, weight-decay masks and learning-rate schedules as functions of progress t ∈ [0, 1].

Schedules read progress, never the step count: the trainer passes t = elapsed / budget for a
budget-bound run (the cramming recipe) or t = step / max_steps for a step-bound one, so every
schedule works under both and resuming restores the schedule position with the clock.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxbert.config import ConfigError, check


def budget_triangle(t, cfg):
  """The cramming schedule: min(0.25 + t, 4(1 − t)); 0.25 at the start, peak at 0.75, 0 at 1."""
  del cfg
  return jnp.minimum(0.25 + t, 4.0 * (1.0 - t))


def one_cycle(t, cfg):
  """Symmetric triangle: linear from 0 to the peak at t = 0.5, then linear to 0."""
  del cfg
  return jnp.minimum(2.0 * t, 2.0 * (1.0 - t))


def _warmup(t, cfg):
  w = cfg.warmup
  return jnp.minimum(1.0, t / w) if w > 0 else jnp.ones_like(t)


def cosine(t, cfg):
  """Linear warmup over `warmup`, then half a cosine down to 0 at t = 1."""
  frac = jnp.clip((t - cfg.warmup) / (1.0 - cfg.warmup), 0.0, 1.0)
  return _warmup(t, cfg) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def linear(t, cfg):
  """Linear warmup over `warmup`, then linear decay to 0 at t = 1 (Izsak et al. 2021)."""
  return jnp.minimum(_warmup(t, cfg), jnp.clip((1.0 - t) / (1.0 - cfg.warmup), 0.0, 1.0))


def wsd(t, cfg):
  """Warmup, stable at the peak, then linear decay to 0 over the last `decay` of progress."""
  return jnp.minimum(_warmup(t, cfg), jnp.clip((1.0 - t) / cfg.decay, 0.0, 1.0))


def constant(t, cfg):
  """The peak throughout, after an optional warmup."""
  return _warmup(t, cfg)


SCHEDULES = {f.__name__: f for f in (budget_triangle, one_cycle, cosine, linear, wsd, constant)}


def progress(config: ml_collections.ConfigDict, step: int, elapsed_s: float) -> float:
  """Progress t of a run at `step` with `elapsed_s` of its budget spent: step / train.max_steps
  when step-bound, else elapsed / budget_hours (unclipped: learning_rate clips)."""
  if config.train.max_steps > 0:
    return step / config.train.max_steps
  return elapsed_s / (config.budget_hours * 3600)


def learning_rate(cfg: ml_collections.ConfigDict, t):
  """Peak lr times the schedule's multiplier at progress t (clipped to [0, 1])."""
  t = jnp.clip(jnp.asarray(t, jnp.float32), 0.0, 1.0)
  return cfg.peak_lr * SCHEDULES[cfg.schedule](t, cfg)


def decay_mask(params):
  """Weight decay on matrices (kernels, embeddings) only: not on biases, norms or scalars."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim >= 2 and "bias" not in jax.tree_util.keystr(path), params)


def _muon_matrices(params):
  """Muon's share: the encoder's weight matrices. None (AdamW) for the token embeddings, which
  are a lookup table and the tied decoder, not a linear map of activations, and for the rest."""
  return jax.tree_util.tree_map_with_path(
      lambda path, p: optax.contrib.MuonDimensionNumbers()
      if p.ndim == 2 and "kernel" in jax.tree_util.keystr(path) else None, params)


# optim.name; config.FIELDS reads it and SCHEDULES by these names
OPTIMIZERS = ("adamw", "adam", "sgd", "muon", "schedule_free")


def _base(name, learning_rate, cfg, mask):
  if name == "adamw":
    return optax.adamw(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                       weight_decay=cfg.weight_decay, mask=mask)
  if name == "adam":
    return optax.adam(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask),
                       optax.sgd(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov))
  if name == "muon":
    # consistent_rms=0.2 scales Muon's orthogonal updates to AdamW's typical RMS (Liu et al.
    # 2025, arXiv 2502.16982), so one peak_lr serves both halves.
    return optax.contrib.muon(learning_rate, eps=cfg.eps, weight_decay=cfg.weight_decay,
                              adam_b1=cfg.b1, adam_b2=cfg.b2, consistent_rms=0.2,
                              muon_weight_dimension_numbers=_muon_matrices)
  if name == "schedule_free":
    # Schedule-free AdamW (Defazio et al. 2024): the params trained are an interpolation; the
    # ones to evaluate come from eval_params. Use it with optim.schedule="constant" and a warmup.
    return optax.contrib.schedule_free_adamw(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                             weight_decay=cfg.weight_decay)
  raise ConfigError(f"optim.name={name!r} is not an optimizer; use one of "
                    f"{', '.join(OPTIMIZERS)}")


def make(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Clip by global norm, then the optimizer, with the lr injected so the step can set it."""
  check(cfg, "optim")  # name and schedule among them: fail now, not inside jit

  def chain(learning_rate):
    clip = optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm > 0 else optax.identity()
    return optax.chain(clip, _base(cfg.name, learning_rate, cfg, decay_mask))

  return optax.inject_hyperparams(chain)(learning_rate=cfg.peak_lr)


def eval_params(cfg, state):
  """The params to evaluate or keep: the train state's, or schedule-free AdamW's average."""
  if cfg.name != "schedule_free":
    return state.params
  inner = state.opt_state.inner_state  # inject_hyperparams' state of chain(clip, schedule_free)
  return optax.contrib.schedule_free_eval_params(inner[-1], state.params)


def set_learning_rate(opt_state, lr):
  """The state of `make`'s optimizer with its live learning rate replaced."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
