"""Pretraining: the train state, the one jitted step, the loop and its wall-clock budget.

Read top to bottom: config → data → model and optimizer → update step → checkpoint → loop →
evaluation. Progress t ∈ [0, 1] is elapsed / budget (or step / max_steps when step-bound); the
learning rate and the batch ramp read t and nothing else, so a resumed run picks both up from the
restored clock.
"""

import math
import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxbert import checkpoint, data, evaluate, masking, optim
from jaxbert import config as config_lib
from jaxbert import metrics as metrics_log
from jaxbert.data import loader
from jaxbert.model import count_params, flops_per_token
from jaxbert.state import TrainState, build, init_key


class NonFiniteLoss(RuntimeError):
  pass


class Interrupted(RuntimeError):
  """Training stopped on SIGTERM or SIGINT after saving a checkpoint; `signum` says which."""

  def __init__(self, message, signum):
    super().__init__(message)
    self.signum = signum


class _StopOnSignal:
  """SIGTERM/SIGINT ask the loop to stop at the next step boundary; a second one exits at once."""

  def __init__(self):
    self.signum = None

  def _handle(self, signum, frame):
    if self.signum is not None:
      os._exit(128 + signum)  # the user insists: no checkpoint, no cleanup
    self.signum = signum
    print(f"\n{signal.Signals(signum).name}: saving a checkpoint, then stopping "
          "(send it again to stop at once)", file=sys.stderr, flush=True)

  def __enter__(self):
    # Handlers can only be set from the main thread; elsewhere (e.g. a notebook worker) the
    # process keeps its default behaviour.
    self._previous = {}
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


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
  logits = model.apply({"params": params}, batch["inputs"], batch["positions"],
                       deterministic=deterministic, rngs={"dropout": rng})
  w = batch["weights"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
  hits = (jnp.argmax(logits, -1) == batch["targets"]) * w
  return jnp.sum(ce * w), (jnp.sum(w), jnp.sum(hits))


def make_train_step(model, tx, config):
  """The jitted update: scan over micro-batches summing gradients, divide once, apply.

  `batches` holds [n, micro_batch, ...] arrays; `t` is the progress that sets the learning rate.
  Dropout randomness is fold_in(seed key, step, micro-batch), so a resumed step repeats exactly.
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

  return jax.jit(step, donate_argnums=(0,))


# ---------------------------------------------------------------------------------------------
# The loop.

def _stack(micro_batches):
  return jax.tree.map(lambda *xs: np.stack(xs), *micro_batches)


def _duration(seconds: float) -> str:
  seconds = max(0, int(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
         f"{seconds // 60}m{seconds % 60:02d}s"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until the budget or step limit, checkpointing on the way; returns held-out metrics."""
  config = config_lib.resolve(config)
  if checkpoint.has_checkpoint(workdir):
    differing = checkpoint.incompatible_keys(checkpoint.read_config(workdir).to_dict(),
                                             config.to_dict())
    if differing:
      raise checkpoint.IncompatibleCheckpoint(
          f"{workdir} holds a checkpoint of another run: {', '.join(differing)} differ from its "
          "config.json; use a new --workdir, or restore the original values to resume")

  model, tx, init = build(config)  # before anything is written: a bad setting leaves no trace

  # Input. Preparing the token store is cached and shared across runs, so it is off the clock;
  # it comes before the workdir is touched, so bad data leaves nothing behind.
  store = data.prepare(config.data, config.model.vocab_size)
  # The lock creates the workdir and refuses a second run; checkpoints are closed however we exit.
  with checkpoint.WorkdirLock(workdir), checkpoint.Checkpoints(workdir, config.train.keep) as ckpts:
    return _train(config, workdir, ckpts, model, tx, init, store)


def _train(config, workdir, ckpts, model, tx, init, store) -> dict:
  checkpoint.write_config(workdir, config)
  tc = config.train
  tokens_per_row = config.data.seq_len
  iterator = iter(loader.pretraining_batches(
      store.train, seed=config.seed, batch_size=tc.micro_batch, mask_rate=config.data.mask_rate,
      vocab_size=config.model.vocab_size, threads=tc.loader_threads, order=config.data.order))

  # Model and state: fresh, or the workdir's latest checkpoint (params, optimizer, data position).
  clock = time.monotonic()
  restored = ckpts.restore_latest_good(jax.eval_shape(init, init_key(config)), iterator)
  if restored is None:
    state = jax.jit(init)(init_key(config))
    elapsed0, tokens = 0.0, 0
    metrics_log.drop_after(workdir, -1)  # lines of an earlier attempt that never checkpointed
    metrics_log.write(workdir, {"kind": "start", "step": 0, "params": count_params(state.params),
                                "train_rows": int(store.train.shape[0]), "time": time.time()})
  else:
    step, state, meta = restored
    elapsed0, tokens = meta["elapsed_s"], meta["tokens"]
    metrics_log.drop_after(workdir, step)
    print(f"resuming {workdir} at step {step}: {_duration(elapsed0)} of the budget spent, "
          f"{tokens / 1e6:.1f}M tokens seen", flush=True)
  elapsed = lambda: elapsed0 + time.monotonic() - clock
  step = int(state.step)

  train_step = make_train_step(model, tx, config)
  budget_s = config.budget_hours * 3600
  flops = flops_per_token(model.config, masking.num_masked(config.data.mask_rate,
                                                           config.data.seq_len))
  progress = (lambda s, e: s / tc.max_steps) if tc.max_steps > 0 else (lambda s, e: e / budget_s)
  done = lambda s, e: e >= budget_s or (tc.max_steps > 0 and s >= tc.max_steps)

  def save():
    ckpts.save(step, state, iterator, {"step": step, "elapsed_s": elapsed(), "tokens": tokens,
                                       "config": config.to_dict()})

  print(f"training {count_params(state.params) / 1e6:.1f}M params on {store.train.shape[0]} rows"
        f" of {config.data.seq_len} tokens; budget {_duration(budget_s)}"
        + (f", {tc.max_steps} steps" if tc.max_steps else ""), flush=True)
  last_save, window = time.monotonic(), (time.monotonic(), tokens)
  saved_step = step if ckpts.latest_step() == step else None
  stop = _StopOnSignal()
  with stop:
    while not done(step, elapsed()) and stop.signum is None:
      t = progress(step, elapsed())
      n = accumulation(tc, t)
      batches = _stack([next(iterator) for _ in range(n)])
      state, metrics = train_step(state, batches, np.float32(t))
      step += 1
      tokens += n * tc.micro_batch * tokens_per_row
      last = done(step, elapsed()) or stop.signum is not None
      due = time.monotonic() - last_save >= tc.checkpoint_minutes * 60 or (
          tc.checkpoint_steps > 0 and step % tc.checkpoint_steps == 0)
      log = step % tc.log_every == 0 or last
      if log or due:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}  # the only host sync
        if not math.isfinite(metrics["loss"]):
          raise NonFiniteLoss(
              f"loss is {metrics['loss']} at step {step} (finite at the last check before it); "
              f"lower optim.peak_lr or raise optim.warmup; the workdir keeps checkpoint step "
              f"{ckpts.latest_step()}")
      if log:
        now = time.monotonic()
        tokens_per_s = (tokens - window[1]) / (now - window[0])
        window = (now, tokens)
        record = {"kind": "train", "step": step, **metrics, "batch_rows": n * tc.micro_batch,
                  "progress": float(t), "elapsed_s": elapsed(), "tokens": tokens,
                  "tokens_per_s": tokens_per_s, "tflops_per_s": tokens_per_s * flops / 1e12}
        metrics_log.write(workdir, record)
        where = f"step {step}/{tc.max_steps}" if tc.max_steps else f"step {step}"
        print(f"{where} | loss {metrics['loss']:.3f} | acc {metrics['accuracy']:.3f} | "
              f"{tokens_per_s / 1e3:.1f}k tok/s | lr {metrics['lr']:.2e} | "
              f"batch {n * tc.micro_batch} | {_duration(budget_s - elapsed())} of budget left",
              flush=True)
      if due:
        save()
        last_save, saved_step = time.monotonic(), step
    if saved_step != step:
      save()
    ckpts.wait()  # inside the signal guard: a signal during the last save does not cut it short
  if stop.signum is not None:
    raise Interrupted(f"stopped by {signal.Signals(stop.signum).name} at step {step}; checkpoint "
                      "saved: rerun the same command to resume", stop.signum)
  print(f"stopped at step {step} after {_duration(elapsed())}; {tokens / 1e6:.1f}M tokens seen",
        flush=True)

  # A run that had already finished only reports its evaluation again.
  done_before = [r for r in metrics_log.read(workdir) if r["kind"] == "eval" and r["step"] == step]
  if done_before:
    results = {k: v for k, v in done_before[-1].items() if k not in ("kind", "step")}
  else:
    results = evaluate.mlm(model, state.params, store, config)
    metrics_log.write(workdir, {"kind": "eval", "step": step, **results})
  print(evaluate.format_mlm(results), flush=True)
  return results
