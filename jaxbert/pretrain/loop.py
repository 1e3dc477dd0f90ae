"""The pretraining loop: restore, then step until the budget, logging, checkpointing; evaluate.

Progress t ∈ [0, 1] is elapsed / budget (or step / max_steps when step-bound); the learning rate
and the batch ramp read t and nothing else, so a resumed run picks both up from the restored clock.
One process of a multi-process run writes the workdir's files; all of them save checkpoints (orbax
coordinates them) and all take every decision together (parallel.agree).
"""

import collections
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from jaxbert import masking, optim, progress
from jaxbert import config as config_lib
from jaxbert import workdir as workdir_lib
from jaxbert.data import loader
from jaxbert.model import count_params, flops_per_token
from jaxbert.workdir import events
from jaxbert.workdir import metrics as metrics_log

from . import evaluate, microbatch, parallel, points as points_lib
from . import state as state_lib
from . import step as step_lib
from .rollback import Rollback, finite
from .signals import StopOnSignal
from .state import build, init_key

# Steps dispatched but not finished. JAX returns from a step at once and queues it; left alone the
# host runs dozens of steps ahead (about 35 on the CPU), so its clock, which sets the schedule, the
# budget's end and when a stop signal is heeded, would be that many steps ahead of the device's
# work. Waiting for the step before last keeps one queued behind the running one: the device never
# idles, and a stop takes effect within two steps.
STEPS_IN_FLIGHT = 2


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains until the budget or step limit, checkpointing on the way; returns held-out metrics.

  A new workdir starts from random init, or with config.init_from from that workdir's latest
  params and its tokenizer (continued pretraining); a workdir with a checkpoint resumes from it.
  """
  config = config_lib.resolve(config)
  model, tx, init = build(config)  # before anything is written: a bad setting leaves no trace
  with workdir_lib.open_for_training(config, workdir) as run:
    return _train(run, model, tx, init)


def layout(config, init, mesh):
  """(abstract state with its shardings, state shardings, batch sharding) on `mesh`."""
  abstract_state = jax.eval_shape(init, init_key(config))
  state_sharding = parallel.state_shardings(abstract_state, mesh, config.train.fsdp)
  return (parallel.with_shardings(abstract_state, state_sharding), state_sharding,
          parallel.batch_sharding(mesh))


def _train(run: workdir_lib.Training, model, tx, init) -> dict:
  events.load()  # off the clock, like preparing data: it is import time, not training
  clock = time.monotonic()  # compiling to choose the micro-batch counts against the budget
  config, workdir, ckpts, store, source, primary = (
      run.config, run.workdir, run.checkpoints, run.store, run.source, run.primary)
  tc = config.train
  mesh = parallel.make_mesh()
  if tc.micro_batch % mesh.size:
    raise config_lib.ConfigError(f"train.micro_batch={tc.micro_batch} must be a multiple of the "
                                 f"{mesh.size} devices, which share each micro-batch's rows")
  abstract_state, state_sharding, batch_sharding = layout(config, init, mesh)
  train_step = step_lib.make_train_step(model, tx, config, (state_sharding, batch_sharding))
  if tc.micro_batch == 0:
    tc.micro_batch, need = microbatch.choose(train_step, config, abstract_state, batch_sharding)
    print(f"micro-batch: {tc.micro_batch} rows, the most that fit "
          f"({need / 2**30:.2f} GiB of {microbatch.memory_limit(tc) / 2**30:.1f} GiB per device); "
          f"{tc.batch_size // tc.micro_batch} per step once the batch ramp is done", flush=True)
  if primary:
    workdir_lib.write_config(workdir, config)
  micro_tokens = tc.micro_batch * config.data.seq_len

  def restore():
    """(checkpoint step or None, state, data iterator, meta) of the latest good step, or fresh."""
    iterator = iter(loader.pretraining_batches(
        store.train, seed=config.seed, batch_size=tc.micro_batch // jax.process_count(),
        mask_rate=config.data.mask_rate, vocab_size=config.model.vocab_size,
        threads=tc.loader_threads, order=config.data.order))
    restored = ckpts.restore_latest_good(abstract_state, iterator)
    if restored is None:
      if source is not None:
        state = state_lib.from_source(source, tx, abstract_state, state_sharding)
      else:
        state = jax.jit(init, out_shardings=state_sharding)(init_key(config))
      return None, state, iterator, {"step": 0, "elapsed_s": 0.0, "tokens": 0}
    saved, state, meta = restored
    return saved, state, iterator, meta

  saved_step, state, iterator, meta = restore()
  elapsed0, tokens = meta["elapsed_s"], meta["tokens"]  # tokens drawn from the data so far
  records = metrics_log.Records(workdir, primary, saved_step or 0)
  if saved_step is None:
    records.rewind(-1)  # lines of an earlier attempt that never checkpointed
    start = {} if source is None else {"init_from": os.path.abspath(source.path),
                                       "init_step": source.step}
    records.write({"kind": "start", "step": 0, "params": count_params(state.params),
                   "train_rows": int(store.train.shape[0]), "time": time.time(),
                   "device_kind": jax.local_devices()[0].device_kind, "devices": mesh.size,
                   **start})
    if source is not None:
      print(f"starting from the params of {source.path} at its step {source.step} (init_from); "
            "the optimizer state, schedule and budget are this run's, from step 0", flush=True)
  else:
    records.rewind(saved_step)
    print(f"resuming {workdir} at step {saved_step}: {_duration(elapsed0)} of the budget spent, "
          f"{tokens / 1e6:.1f}M tokens seen", flush=True)
  elapsed = lambda: elapsed0 + time.monotonic() - clock
  step = int(state.step)

  budget_s = config.budget_hours * 3600
  end = min(n for n in (tc.max_steps, tc.stop_steps, float("inf")) if n > 0)
  done = lambda s, e: e >= budget_s or s >= end
  rollback = Rollback(tc, ckpts.latest_step)
  speed = progress.Speed(
      flops_per_token(model.config, masking.num_masked(config.data.mask_rate, config.data.seq_len),
                      config.data.seq_len),
      progress.peak_flops(jax.local_devices()[0].device_kind, config.model.dtype,
                          tc.peak_tflops), tokens)
  # Held-out points on the way (config.eval.every_*): built once, so each point costs only the
  # forward passes. None when the store holds no rows out (task: sources).
  heldout = evaluate.Heldout(model, store, config) if len(store.heldout) else None
  points = points_lib.Points(config.eval, elapsed0)

  def save():
    nonlocal meta  # the last checkpoint's: the final evaluation records where it stands
    meta = {"step": step, "elapsed_s": elapsed(), "tokens": tokens, "config": config.to_dict()}
    ckpts.save(step, state, iterator, meta)

  print(f"training {count_params(state.params) / 1e6:.1f}M params on {store.train.shape[0]} rows"
        f" of {config.data.seq_len} tokens on {mesh.size} {jax.default_backend()} device(s)"
        + (" (params sharded)" if tc.fsdp and mesh.size > 1 else "")
        + f"; budget {_duration(budget_s)}"
        + (f", {tc.max_steps} steps" if tc.max_steps else ""), flush=True)
  stop = StopOnSignal()
  bar = progress.Progress(tc.max_steps or budget_s, "step" if tc.max_steps else "s",
                          step if tc.max_steps else elapsed())
  # Budget time and stop requests as every process sees them: the first process's clock, and a
  # signal to any process (a no-op with one process). Read once per step, so that the schedule,
  # the batch size, saves and the end fall on the same step everywhere.
  spent, stopping = parallel.agree(elapsed(), stop.signum is not None)
  last_save = spent
  in_flight = collections.deque()  # a small output of each dispatched step, oldest first
  logged = 0  # train lines written by this process since it started
  with stop, bar, records:
    while not done(step, spent) and not stopping:
      t = optim.progress(config, step, spent)
      n = step_lib.accumulation(tc, t)
      micro = [next(iterator) for _ in range(n)]
      batches = parallel.put_batch(jax.tree.map(lambda *xs: np.stack(xs), *micro), batch_sharding)
      backup = rollback.backup(state, step)
      state, metrics = train_step(state, batches, np.float32(t))
      in_flight.append(metrics["loss"])
      if len(in_flight) > STEPS_IN_FLIGHT:
        jax.block_until_ready(in_flight.popleft())
      tokens += n * micro_tokens
      if backup is not None and not finite(jax.device_get(metrics)):
        records.write({"kind": "skip", "step": step + 1, "batch_rows": n * tc.micro_batch,
                       "tokens": tokens})
        rollback.skip(step + 1, n * tc.micro_batch)  # raises once train.max_skips are spent
        state = backup
        continue
      step += 1
      spent, stopping = parallel.agree(elapsed(), stop.signum is not None)
      log = step % tc.log_every == 0 or done(step, spent) or stopping
      due = spent - last_save >= tc.checkpoint_minutes * 60 or (
          tc.checkpoint_steps > 0 and step % tc.checkpoint_steps == 0)
      if log or due:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}  # the only host sync
        problem = rollback.check(step, metrics)  # raises unless train.on_nonfinite="skip"
        if problem:
          ckpts.wait()
          saved_step, state, iterator, meta = restore()
          step, tokens = int(state.step), meta["tokens"]
          rollback.restarted(step)
          records.rewind(step)
          speed.restart(tokens)
          print(f"{problem}; rolling back to step {step} to skip the batch that causes it",
                file=sys.stderr, flush=True)
          continue
      if log:
        line = speed.measure(tokens)
        records.write({"kind": "train", "step": step, **metrics, "batch_rows": n * tc.micro_batch,
                       "progress": float(t), "elapsed_s": elapsed(), "tokens": tokens, **line})
        where = f"step {step}/{tc.max_steps}" if tc.max_steps else f"step {step}"
        bar.update(step if tc.max_steps else elapsed(),
                   f"{where} | loss {metrics['loss']:.3f} | acc {metrics['accuracy']:.3f} | "
                   f"{line['tokens_per_s'] / 1e3:.1f}k tok/s"
                   + (f" | MFU {line['mfu']:.1%}" if "mfu" in line else "")
                   + f" | lr {metrics['lr']:.2e} | batch {n * tc.micro_batch} | "
                   f"{_duration(budget_s - elapsed())} of budget left")
        logged += 1
        if logged == 2:  # the first line's rate includes compiling
          rate, _ = parallel.agree(line["tokens_per_s"], False)  # the first process's, everywhere
          _check_epochs(config, store, step, end, tokens, spent, rate)
      if due:
        save()
        last_save, saved_step = spent, step
      if heldout is not None and points.due(step, spent) and not done(step, spent):
        # Off the clock: the steps already queued finish on it, then the clock stops while the
        # held-out rows are scored. The evaluation reads the params only, so training is the same
        # with it or without it.
        jax.block_until_ready(state.params)
        began = time.monotonic()
        record = points_lib.record(heldout, config, state, step,
                                   points_lib.where(config, {"step": step, "tokens": tokens,
                                                             "elapsed_s": spent}))
        paused = time.monotonic() - began
        clock += paused
        speed.pause(paused)
        points.done(spent)
        if record is not None:
          records.write({**record, "eval_s": paused})
          bar.write(f"held-out MLM at step {step}: loss {record['mlm_loss']:.3f}, accuracy "
                    f"{record['mlm_accuracy']:.2%} ({_duration(spent)} of budget)")
    if saved_step != step:
      save()
    ckpts.wait()  # inside the signal guard: a signal during the last save does not cut it short
  if stopping:
    raise stop.interrupted(step)
  print(f"stopped at step {step} after {_duration(elapsed())}; {tokens / 1e6:.1f}M tokens seen",
        flush=True)
  return points_lib.final(config, workdir, heldout, state, step, points_lib.where(config, meta))


def _check_epochs(config, store, step, end, tokens, spent, tokens_per_s):
  """Stops a run whose budget would read its training rows more than data.max_epochs times, at
  the rate measured so far: a day on a small corpus is mostly spent memorising it."""
  limit, corpus = config.data.max_epochs, store.train.size
  if limit <= 0:
    return
  ahead = (end - step) * tokens / step if end < float("inf") else float("inf")
  ahead = min(ahead, tokens_per_s * max(0.0, config.budget_hours * 3600 - spent))
  epochs = (tokens + ahead) / corpus
  if epochs > limit:
    raise config_lib.ConfigError(
        f"at the {tokens_per_s / 1e3:.0f}k tokens/s measured so far, the budget would read the "
        f"{corpus / 1e6:.1f}M training tokens {epochs:.0f} times (data.max_epochs={limit:g}): "
        "point data.sources at a larger corpus (e.g. parquet:PATH/*.parquet) or pass "
        "--config.data.max_epochs=0 to go on")


def _duration(seconds: float) -> str:
  seconds = max(0, int(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
         f"{seconds // 60}m{seconds % 60:02d}s"

