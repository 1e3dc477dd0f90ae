"""What the plan compiles and runs on this machine: the train step's memory by XLA's own
analysis, the micro-batch of the automatic rule, and a short burst of real steps for throughput.

The burst runs as the loop does (the loader's batches, the same dispatch and steps in flight),
from a fresh init, and never counts the compile; it measures this process, so a caller that
wants the training run's figure tunes malloc as run.py does for training (cpu/allocator.py).
"""

import collections
import time

import jax
import numpy as np

from jaxbert.config import ConfigError
from jaxbert.data import loader
from jaxbert.pretrain import loop, microbatch, parallel
from jaxbert.pretrain.state import init_key

# A burst step costs at most this many FLOPs (rows are halved until it does): the quick shape's
# 32 rows (6 GFLOP) run whole, while a width-768 step of 64 rows, minutes on two cores, runs 1.
BURST_FLOPS = 2e10
BURST_STEPS = 20  # timed steps at most ...
BURST_SECONDS = 5.0  # ... or as many as fit in this, but never fewer than
MIN_BURST_STEPS = 3
WARMUP_SECONDS = 1.0  # a second warm-up step when the first took less: its buffers are new


def memory_limit(train_cfg) -> tuple[int, str]:
  """(bytes, where they come from) that the automatic micro-batch rule measures against."""
  limit = microbatch.memory_limit(train_cfg)
  if train_cfg.device_memory_gb > 0:
    return limit, "train.device_memory_gb"
  stats = jax.local_devices()[0].memory_stats() or {}
  return limit, ("the device's bytes_limit" if "bytes_limit" in stats
                 else "host memory available now (a CPU reports none)")


def choose(train_step, config, abstract_state, batch_sharding) -> dict:
  """The micro-batch the run uses: train.micro_batch, or the automatic rule's (microbatch.choose)
  with the bytes it measured and the seconds it took, which count against the run's budget."""
  if config.train.micro_batch:
    return {"rows": config.train.micro_batch, "by": "train.micro_batch", "need_bytes": None,
            "seconds": 0.0, "error": None}
  began = time.monotonic()
  try:
    rows, need = microbatch.choose(train_step, config, abstract_state, batch_sharding)
    error = None
  except ConfigError as e:  # the plan reports it; a burst at the fewest rows still runs
    rows, need, error = batch_sharding.mesh.size, None, str(e)
  return {"rows": rows, "by": "the automatic rule (microbatch.py)", "need_bytes": need,
          "seconds": time.monotonic() - began, "error": error}


def burst_rows(rows: int, flops_per_token: float, seq_len: int, devices: int) -> int:
  """Rows per burst step: the run's micro-batch, halved while a step costs over BURST_FLOPS."""
  r = rows
  while r > devices and r * seq_len * flops_per_token > BURST_FLOPS:
    r = max(devices, r // 2 // devices * devices)
  return r


def batches(config, store, rows: int):
  """The loader's masked batches of `rows` rows, as the run draws them (one process)."""
  tc = config.train
  return iter(loader.pretraining_batches(
      store.train, seed=config.seed, batch_size=rows // jax.process_count(),
      mask_rate=config.data.mask_rate, vocab_size=config.model.vocab_size,
      threads=tc.loader_threads, order=config.data.order))


def spec(example: dict, rows: int, sharding) -> dict:
  """Abstract stacked micro-batches [1, rows, ...] of the fields and dtypes of a loader batch."""
  return {k: jax.ShapeDtypeStruct((1, rows, *x.shape[1:]), x.dtype, sharding=sharding)
          for k, x in example.items()}


def compile_step(train_step, abstract_state, batch_spec) -> tuple:
  """(compiled step, seconds to lower and compile it)."""
  began = time.monotonic()
  compiled = train_step.lower(abstract_state, batch_spec, np.float32(0)).compile()
  return compiled, time.monotonic() - began


def memory(compiled, train_cfg) -> dict:
  """XLA's memory analysis of a compiled step; `need_bytes` is the measure microbatch.choose
  compares with MEMORY_HEADROOM of the limit (arguments + outputs - aliased + temporaries)."""
  m = compiled.memory_analysis()
  need = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
          + m.temp_size_in_bytes)
  limit, source = memory_limit(train_cfg)
  return {"backend": jax.default_backend(), "argument_bytes": m.argument_size_in_bytes,
          "output_bytes": m.output_size_in_bytes, "alias_bytes": m.alias_size_in_bytes,
          "temp_bytes": m.temp_size_in_bytes, "need_bytes": need, "limit_bytes": limit,
          "limit_source": source, "headroom": microbatch.MEMORY_HEADROOM,
          "fits": need <= microbatch.MEMORY_HEADROOM * limit}


def burst(compiled, config, init, layout, stream, rows: int) -> dict:
  """Times real steps of the compiled step (micro-batches of `rows`) from a fresh init on the
  loader's batches: steps and seconds timed, tokens and steps per second."""
  _, state_sharding, batch_sharding = layout
  state = jax.jit(init, out_shardings=state_sharding)(init_key(config))

  def dispatch(state):
    stacked = jax.tree.map(lambda x: x[None], next(stream))
    state, metrics = compiled(state, parallel.put_batch(stacked, batch_sharding), np.float32(0))
    return state, metrics["loss"]

  began = time.monotonic()
  state, loss = dispatch(state)
  jax.block_until_ready(loss)
  if time.monotonic() - began < WARMUP_SECONDS:
    state, loss = dispatch(state)
    jax.block_until_ready(loss)
  in_flight, steps = collections.deque(), 0
  began = time.monotonic()
  while steps < MIN_BURST_STEPS or (
      steps < BURST_STEPS and time.monotonic() - began < BURST_SECONDS):
    state, loss = dispatch(state)
    in_flight.append(loss)
    steps += 1
    if len(in_flight) > loop.STEPS_IN_FLIGHT:
      jax.block_until_ready(in_flight.popleft())
  jax.block_until_ready(list(in_flight))
  seconds = time.monotonic() - began
  return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds,
          "tokens_per_s": steps * rows * config.data.seq_len / seconds}
