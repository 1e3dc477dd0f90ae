"""Pretraining: the train state, the one jitted step, the loop and its wall-clock budget.

Read top to bottom: config → data → model and optimizer → update step → checkpoint → loop →
evaluation. Progress t ∈ [0, 1] is elapsed / budget (or step / max_steps when step-bound); the
learning rate and the batch ramp read t and nothing else, so a resumed run picks both up from the
restored clock.
"""

import collections
import contextlib
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

from jaxbert import (checkpoint, evaluate, events, faults, masking, microbatch, optim,
                     parallel, progress, report)
from jaxbert import config as config_lib
from jaxbert import metrics as metrics_log
from jaxbert.data import loader
from jaxbert.loss import cross_entropy
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
  ce, hit = cross_entropy(logits, batch["targets"])
  return jnp.sum(ce * w), (jnp.sum(w), jnp.sum(hit * w))


def make_train_step(model, tx, config, shardings=None):
  """The jitted update: scan over micro-batches summing gradients, divide once, apply.

  `batches` holds [n, micro_batch, ...] arrays; `t` is the progress that sets the learning rate.
  Dropout randomness is fold_in(seed key, step, micro-batch), so a resumed step repeats exactly.
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


# ---------------------------------------------------------------------------------------------
# The loop.

def _stack(micro_batches):
  return jax.tree.map(lambda *xs: np.stack(xs), *micro_batches)


def _duration(seconds: float) -> str:
  seconds = max(0, int(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
         f"{seconds // 60}m{seconds % 60:02d}s"


# Steps dispatched but not finished. JAX returns from a step at once and queues it; left alone the
# host runs dozens of steps ahead (about 35 on the CPU), so its clock, which sets the schedule, the
# budget's end and when a stop signal is heeded, would be that many steps ahead of the device's
# work. Waiting for the step before last keeps one queued behind the running one: the device never
# idles, and a stop takes effect within two steps.
STEPS_IN_FLIGHT = 2


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until the budget or step limit, checkpointing on the way; returns held-out metrics."""
  config = config_lib.resolve(config)
  if checkpoint.has_checkpoint(workdir):
    saved = checkpoint.read_config(workdir)
    if config.train.micro_batch == 0:  # the data position counts micro-batches: keep their size
      config.train.micro_batch = saved.train.micro_batch
    differing = checkpoint.incompatible_keys(saved.to_dict(), config.to_dict())
    if differing:
      raise checkpoint.IncompatibleCheckpoint(
          f"{workdir} holds a checkpoint of another run: {', '.join(differing)} "
          f"{'differs' if len(differing) == 1 else 'differ'} from its config.json; use a new "
          "--workdir, or restore the original values to resume")

  model, tx, init = build(config)  # before anything is written: a bad setting leaves no trace

  # Input. Preparing the token store is cached and shared across runs, so it is off the clock;
  # it comes before the workdir is touched, so bad data leaves nothing behind. With several
  # processes, the first builds it and the others then find it in the shared cache.
  if jax.process_index() == 0:
    store = checkpoint.token_store(config, workdir)
  parallel.barrier("token store")
  if jax.process_index() > 0:
    store = checkpoint.token_store(config, workdir)
  # The lock creates the workdir and refuses a second run (only the first process of a multi-
  # process run takes it); checkpoints are closed however we exit.
  lock = checkpoint.WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
  with lock, checkpoint.Checkpoints(workdir, config.train.keep) as ckpts:
    return _train(config, workdir, ckpts, model, tx, init, store)


def layout(config, init, mesh):
  """(abstract state with its shardings, state shardings, batch sharding) on `mesh`."""
  abstract_state = jax.eval_shape(init, init_key(config))
  state_sharding = parallel.state_shardings(abstract_state, mesh, config.train.fsdp)
  return (parallel.with_shardings(abstract_state, state_sharding), state_sharding,
          parallel.batch_sharding(mesh))


def _finite(metrics) -> bool:
  return math.isfinite(metrics["loss"]) and math.isfinite(metrics["param_norm"])


def _train(config, workdir, ckpts, model, tx, init, store) -> dict:
  events.load()  # off the clock, like preparing data: it is import time, not training
  clock = time.monotonic()  # compiling to choose the micro-batch counts against the budget
  # One process of a multi-process run writes the workdir's files; all of them save checkpoints
  # (orbax coordinates them) and all take every decision together (parallel.agree).
  primary = jax.process_index() == 0
  checkpoint.check_tokenizer(workdir, store.tokenizer_path, claim=primary)
  tc = config.train
  mesh = parallel.make_mesh()
  if tc.micro_batch % mesh.size:
    raise config_lib.ConfigError(f"train.micro_batch={tc.micro_batch} must be a multiple of the "
                                 f"{mesh.size} devices, which share each micro-batch's rows")
  abstract_state, state_sharding, batch_sharding = layout(config, init, mesh)
  train_step = make_train_step(model, tx, config, (state_sharding, batch_sharding))
  if tc.micro_batch == 0:
    tc.micro_batch, need = microbatch.choose(train_step, config, abstract_state, batch_sharding)
    print(f"micro-batch: {tc.micro_batch} rows, the most that fit "
          f"({need / 2**30:.2f} GiB of {microbatch.memory_limit(tc) / 2**30:.1f} GiB per device); "
          f"{tc.batch_size // tc.micro_batch} per step once the batch ramp is done", flush=True)
  if primary:
    checkpoint.write_config(workdir, config)
  micro_tokens = tc.micro_batch * config.data.seq_len

  def start():
    """(checkpoint step or None, state, data iterator, meta) of the latest good step, or fresh."""
    iterator = iter(loader.pretraining_batches(
        store.train, seed=config.seed, batch_size=tc.micro_batch // jax.process_count(),
        mask_rate=config.data.mask_rate, vocab_size=config.model.vocab_size,
        threads=tc.loader_threads, order=config.data.order))
    restored = ckpts.restore_latest_good(abstract_state, iterator)
    if restored is None:
      state = jax.jit(init, out_shardings=state_sharding)(init_key(config))
      return None, state, iterator, {"elapsed_s": 0.0, "tokens": 0}
    step, state, meta = restored
    return step, state, iterator, meta

  def draw(n, tokens):
    """n micro-batches, stacked; `tokens` drawn so far gives the index of the first one."""
    first = tokens // micro_tokens
    micro = [next(iterator) for _ in range(n)]
    for i, batch in enumerate(micro):
      if faults.poisoned(first + i):
        batch["weights"] = batch["weights"] * np.float32("nan")
    return parallel.put_batch(_stack(micro), batch_sharding)

  # Model and state: fresh, or the workdir's latest checkpoint (params, optimizer, data position).
  saved_step, state, iterator, meta = start()
  elapsed0, tokens = meta["elapsed_s"], meta["tokens"]  # tokens drawn from the data so far
  tensorboard = events.Events(workdir, saved_step or 0) if primary else events.Nowhere()

  def record(r):
    if primary:
      metrics_log.write(workdir, r)
      tensorboard.write(r)

  def drop_after(step):
    if primary:
      metrics_log.drop_after(workdir, step)

  if saved_step is None:
    drop_after(-1)  # lines of an earlier attempt that never checkpointed
    record({"kind": "start", "step": 0, "params": count_params(state.params),
                                "train_rows": int(store.train.shape[0]), "time": time.time()})
  else:
    drop_after(saved_step)
    print(f"resuming {workdir} at step {saved_step}: {_duration(elapsed0)} of the budget spent, "
          f"{tokens / 1e6:.1f}M tokens seen", flush=True)
  elapsed = lambda: elapsed0 + time.monotonic() - clock
  step = int(state.step)

  budget_s = config.budget_hours * 3600
  flops = flops_per_token(model.config, masking.num_masked(config.data.mask_rate,
                                                           config.data.seq_len))
  peak = progress.peak_flops(jax.local_devices()[0].device_kind, config.model.dtype, tc.peak_tflops)
  progress_at = (lambda s, e: s / tc.max_steps) if tc.max_steps > 0 else (lambda s, e: e / budget_s)
  done = lambda s, e: e >= budget_s or (tc.max_steps > 0 and s >= tc.max_steps)

  def kept():
    last = ckpts.latest_step()
    return "the workdir keeps no checkpoint" if last is None else \
        f"the workdir keeps checkpoint step {last}"

  def save():
    ckpts.save(step, state, iterator, {"step": step, "elapsed_s": elapsed(), "tokens": tokens,
                                       "config": config.to_dict()})
    faults.maybe_kill("save", step)

  print(f"training {count_params(state.params) / 1e6:.1f}M params on {store.train.shape[0]} rows"
        f" of {config.data.seq_len} tokens on {mesh.size} {jax.default_backend()} device(s)"
        + (" (params sharded)" if tc.fsdp and mesh.size > 1 else "")
        + f"; budget {_duration(budget_s)}"
        + (f", {tc.max_steps} steps" if tc.max_steps else ""), flush=True)
  window = (time.monotonic(), tokens)
  # After a rollback, the steps up to the one that went non-finite are replayed checking each one,
  # keeping a copy of the state to fall back on: the step that fails again is skipped.
  careful_until, rollbacks, skips, checked = 0, 0, 0, 0
  stop = _StopOnSignal()
  bar = progress.Progress(tc.max_steps or budget_s, "step" if tc.max_steps else "s",
                          step if tc.max_steps else elapsed())
  # Budget time and stop requests as every process sees them: the first process's clock, and a
  # signal to any process (a no-op with one process). Read once per step, so that the schedule,
  # the batch size, saves and the end fall on the same step everywhere.
  spent, stopping = parallel.agree(elapsed(), stop.signum is not None)
  last_save = spent
  in_flight = collections.deque()  # a small output of each dispatched step, oldest first
  with stop, bar, tensorboard:
    while not done(step, spent) and not stopping:
      t = progress_at(step, spent)
      n = accumulation(tc, t)
      batches = draw(n, tokens)
      backup = jax.tree.map(jnp.copy, state) if step < careful_until else None
      state, metrics = train_step(state, batches, np.float32(t))
      in_flight.append(metrics["loss"])
      if len(in_flight) > STEPS_IN_FLIGHT:
        jax.block_until_ready(in_flight.popleft())
      faults.maybe_kill("step", step + 1)
      tokens += n * micro_tokens
      if backup is not None and not _finite(jax.device_get(metrics)):
        skips += 1
        record({"kind": "skip", "step": step + 1, "batch_rows": n * tc.micro_batch,
                "tokens": tokens})
        print(f"step {step + 1}: loss is not finite again; skipped its batch of "
              f"{n * tc.micro_batch} rows ({skips} skipped so far)", file=sys.stderr, flush=True)
        if skips > tc.max_skips:
          raise NonFiniteLoss(f"loss is not finite at step {step + 1} after skipping {skips - 1} "
                              "batches (train.max_skips); lower optim.peak_lr or raise "
                              f"optim.warmup; {kept()}")
        state = backup
        continue
      step += 1
      spent, stopping = parallel.agree(elapsed(), stop.signum is not None)
      last = done(step, spent) or stopping
      due = spent - last_save >= tc.checkpoint_minutes * 60 or (
          tc.checkpoint_steps > 0 and step % tc.checkpoint_steps == 0)
      log = step % tc.log_every == 0 or last
      if log or due:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}  # the only host sync
        if not _finite(metrics):
          where = (f"loss {metrics['loss']}, param norm {metrics['param_norm']} at step {step}"
                   + (f" (finite at step {checked})" if checked else ""))
          if tc.on_nonfinite == "stop" or rollbacks >= tc.max_skips:
            raise NonFiniteLoss(
                f"{where}; lower optim.peak_lr or raise optim.warmup"
                + ("" if tc.on_nonfinite == "stop" else f", after {rollbacks} rollbacks")
                + f"; {kept()}")
          rollbacks += 1
          ckpts.wait()
          careful_until = step
          saved_step, state, iterator, meta = start()
          step, tokens = int(state.step), meta["tokens"]
          checked = step
          drop_after(step)
          tensorboard.restart(step)
          window = (time.monotonic(), tokens)
          print(f"{where}; rolling back to step {step} to skip the batch that causes it",
                file=sys.stderr, flush=True)
          continue
        checked = step
      if log:
        now = time.monotonic()
        tokens_per_s = (tokens - window[1]) / (now - window[0])
        window = (now, tokens)
        mfu = {"mfu": tokens_per_s * flops / peak} if peak else {}
        record({"kind": "train", "step": step, **metrics, "batch_rows": n * tc.micro_batch,
                "progress": float(t), "elapsed_s": elapsed(), "tokens": tokens,
                "tokens_per_s": tokens_per_s, "tflops_per_s": tokens_per_s * flops / 1e12, **mfu})
        where = f"step {step}/{tc.max_steps}" if tc.max_steps else f"step {step}"
        bar.update(step if tc.max_steps else elapsed(),
                   f"{where} | loss {metrics['loss']:.3f} | acc {metrics['accuracy']:.3f} | "
                   f"{tokens_per_s / 1e3:.1f}k tok/s"
                   + (f" | MFU {mfu['mfu']:.1%}" if mfu else "")
                   + f" | lr {metrics['lr']:.2e} | batch {n * tc.micro_batch} | "
                   f"{_duration(budget_s - elapsed())} of budget left")
      if due:
        save()
        last_save, saved_step = spent, step
    if saved_step != step:
      save()
    ckpts.wait()  # inside the signal guard: a signal during the last save does not cut it short
  if stopping:
    signum = stop.signum or signal.SIGTERM  # another process of the run was signalled
    raise Interrupted(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint "
                      "saved: rerun the same command to resume", signum)
  print(f"stopped at step {step} after {_duration(elapsed())}; {tokens / 1e6:.1f}M tokens seen",
        flush=True)

  # A run that had already finished only reports its evaluation again.
  done_before = [r for r in metrics_log.read(workdir) if r["kind"] == "eval" and r["step"] == step]
  if done_before:
    results = {k: v for k, v in done_before[-1].items() if k not in ("kind", "step")}
  else:
    params = parallel.gather(state.params)  # whole on every process: the first evaluates
    if not primary:
      return {}
    results = evaluate.mlm(model, params, store, config)
    faults.maybe_kill("eval", step)  # computed, not yet recorded: the worst moment to die
    with events.Events(workdir, step) as tensorboard:
      record({"kind": "eval", "step": step, **results})
  if not primary:
    return results
  print(evaluate.format_mlm(results), flush=True)
  print(f"report: {report.write(workdir)}", flush=True)
  return results
