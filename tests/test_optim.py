import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxbert import optim
from jaxbert.config import default

# Multipliers of the peak at t = 0, 0.5, 0.75, 1 (warmup 0.06, wsd decay 0.2).
EXPECTED = {
    "budget_triangle": [0.25, 0.75, 1.0, 0.0],
    "one_cycle": [0.0, 1.0, 0.5, 0.0],
    "cosine": [0.0, 0.5 * (1 + np.cos(np.pi * 0.44 / 0.94)),
               0.5 * (1 + np.cos(np.pi * 0.69 / 0.94)), 0.0],
    "linear": [0.0, 0.5 / 0.94, 0.25 / 0.94, 0.0],
    "wsd": [0.0, 1.0, 1.0, 0.0],
    "constant": [0.0, 1.0, 1.0, 1.0],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schedule_values(name):
  cfg = default().optim
  cfg.schedule, cfg.peak_lr = name, 2.0
  got = [float(optim.learning_rate(cfg, t)) for t in (0.0, 0.5, 0.75, 1.0)]
  np.testing.assert_allclose(got, 2.0 * np.array(EXPECTED[name]), rtol=1e-6, atol=1e-7)


def test_every_schedule_is_tested_and_ends_at_zero_when_decaying():
  assert set(EXPECTED) == set(optim.SCHEDULES)


def test_schedule_is_clipped_outside_progress_range():
  cfg = default().optim
  assert float(optim.learning_rate(cfg, 1.5)) == 0.0
  assert float(optim.learning_rate(cfg, -1.0)) == pytest.approx(0.25 * cfg.peak_lr)


def test_decay_mask_spares_biases_norms_and_scalars():
  params = {"layer": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)},
            "norm": {"scale": jnp.ones(3), "bias": jnp.ones(3)},
            "embedding": jnp.ones((10, 3)), "position": {"scale": jnp.ones(())}}
  mask = optim.decay_mask(params)
  assert mask == {"layer": {"kernel": True, "bias": False}, "norm": {"scale": False, "bias": False},
                  "embedding": True, "position": {"scale": False}}


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_optimizers_step_and_take_injected_lr(name):
  cfg = default().optim
  cfg.name = name
  tx = optim.make(cfg)
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  grads = {"w": jnp.full((2, 2), 0.1), "b": jnp.full(2, 0.1)}
  state = tx.init(params)
  zero = optim.set_learning_rate(state, 0.0)
  updates, _ = tx.update(grads, zero, params)
  assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(updates))
  updates, _ = tx.update(grads, optim.set_learning_rate(state, 1e-2), params)
  assert float(jnp.abs(updates["w"]).max()) > 0


def test_adamw_decays_matrices_only():
  cfg = default().optim
  cfg.weight_decay, cfg.clip_norm = 0.5, 0.0
  tx = optim.make(cfg)
  params = {"w": jnp.ones((2, 2)), "bias": jnp.ones(2)}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, optim.set_learning_rate(tx.init(params), 0.1), params)
  np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
  np.testing.assert_array_equal(updates["bias"], 0.0)


def test_clipping_bounds_the_update_direction():
  cfg = default().optim
  cfg.name, cfg.clip_norm, cfg.weight_decay = "sgd", 0.5, 0.0
  cfg.momentum = 0.0
  tx = optim.make(cfg)
  params = {"w": jnp.zeros(4)}
  updates, _ = tx.update({"w": jnp.full(4, 10.0)}, optim.set_learning_rate(tx.init(params), 1.0),
                         params)
  assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(0.5, rel=1e-5)


def test_bad_names_are_rejected_with_the_value():
  cfg = default().optim
  cfg.schedule = "triangle"
  with pytest.raises(ValueError, match="triangle"):
    optim.make(cfg)
  cfg = default().optim
  cfg.name = "lamb"
  with pytest.raises(ValueError, match="lamb"):
    optim.make(cfg)


def _sgd_updates(momentum, nesterov, grads):
  """Updates of optim.make's sgd (clipping and weight decay off) for a sequence of gradients."""
  cfg = default().optim
  cfg.update(name="sgd", momentum=momentum, nesterov=nesterov, clip_norm=0.0, weight_decay=0.0)
  tx = optim.make(cfg)
  params = {"w": jnp.zeros(3)}
  state = optim.set_learning_rate(tx.init(params), 0.1)
  out = []
  for g in grads:
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    out.append(np.asarray(updates["w"]))
  return out


def test_sgd_momentum_and_nesterov_take_effect_as_their_formulas_say():
  g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -1.0])
  plain = _sgd_updates(0.0, False, [g1, g2])
  heavy = _sgd_updates(0.9, False, [g1, g2])
  nesterov = _sgd_updates(0.9, True, [g1, g2])
  # Momentum 0 is plain gradient descent; heavy ball adds 0.9 of the previous step's velocity;
  # Nesterov steps along the gradient plus 0.9 of the new velocity.
  np.testing.assert_allclose(plain[1], -0.1 * g2, rtol=1e-6)
  np.testing.assert_allclose(heavy[1], -0.1 * (g2 + 0.9 * g1), rtol=1e-6)
  np.testing.assert_allclose(nesterov[1], -0.1 * (g2 + 0.9 * (g2 + 0.9 * g1)), rtol=1e-6)
  np.testing.assert_allclose(nesterov[0], -0.1 * 1.9 * g1, rtol=1e-6)


def _encoder_like():
  return {"encoder": {"embeddings": {"word": {"embedding": jnp.ones((10, 4))},
                                     "norm": {"scale": jnp.ones(4)}},
                      "layer_0": {"attention": {"query": {"kernel": jnp.eye(4)}}}}}


def test_muon_orthogonalises_matrices_and_leaves_embeddings_to_adamw():
  cfg = default().optim
  cfg.name, cfg.clip_norm, cfg.weight_decay = "muon", 0.0, 0.0
  tx = optim.make(cfg)
  params = _encoder_like()
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(p.size), p.shape) + 0.1, params)
  state = optim.set_learning_rate(tx.init(params), 1.0)
  updates, _ = tx.update(grads, state, params)
  kernel = updates["encoder"]["layer_0"]["attention"]["query"]["kernel"]
  # Muon's update of a matrix is close to orthogonal: its singular values are far more alike
  # than the gradient's.
  cond = lambda m: (lambda s: s.max() / s.min())(np.linalg.svd(np.asarray(m), compute_uv=False))
  g = grads["encoder"]["layer_0"]["attention"]["query"]["kernel"]
  assert cond(kernel) < 2.0 < 4 * 2.0 < cond(g), (cond(kernel), cond(g))
  # Adam's first step (Nesterov, as optax's Muon runs it) is one size times -sign(g) on every
  # entry of the embedding table: elementwise, not a matrix's orthogonalisation.
  emb = np.asarray(updates["encoder"]["embeddings"]["word"]["embedding"])
  g = np.asarray(grads["encoder"]["embeddings"]["word"]["embedding"])
  np.testing.assert_allclose(emb, -np.abs(emb).max() * np.sign(g), rtol=1e-4)


def test_schedule_free_evaluates_the_average_not_the_interpolation():
  cfg = default().optim
  cfg.name, cfg.clip_norm = "schedule_free", 0.0
  tx = optim.make(cfg)
  params = {"w": jnp.ones((2, 2))}
  state = optim.set_learning_rate(tx.init(params), 0.1)
  from jaxbert.pretrain.state import TrainState
  for _ in range(3):
    updates, state = tx.update({"w": jnp.full((2, 2), 0.5)}, state, params)
    params = optax.apply_updates(params, updates)
  train = TrainState(step=3, params=params, opt_state=state)
  evaluated = optim.eval_params(cfg, train)
  assert not np.allclose(evaluated["w"], params["w"])
  # x is the average of the z iterates: farther from the start than y, which lags behind it.
  z = state.inner_state[-1].z["w"]
  b1 = cfg.b1
  np.testing.assert_allclose(evaluated["w"], (params["w"] - (1 - b1) * z) / b1, rtol=1e-6)
  cfg.name = "adamw"
  assert optim.eval_params(cfg, train) is params
