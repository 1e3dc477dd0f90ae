"""A pretraining run's plan, made without training: what it computes, what it needs, where it ends.

plan(config, workdir) returns the figures as a dict, writes them to WORKDIR/plan.json and prints
them as a table: parameters by group, FLOPs per token, the batch ramp's step sizes and shapes,
the compiled step's memory and the micro-batch the automatic rule picks, the corpus (its token
store is prepared here if it is not cached), the throughput of a short burst of real steps (or
one given), and from them the steps, tokens, epochs, ETA and checkpoint disk of the run, with
warnings (warnings(plan)) where they look wrong. Figures come from the code the run executes:
the real init, step.accumulation, microbatch.choose, XLA's memory analysis, the loader.
"""

import itertools
import os
import time

import jax
import ml_collections

from jaxbert import checkpoint, files, masking
from jaxbert import config as config_lib
from jaxbert import workdir as workdir_lib
from jaxbert.data.text import resolve_cache
from jaxbert.model import flops_per_token
from jaxbert.pretrain import loop, microbatch, parallel
from jaxbert.pretrain import step as step_lib
from jaxbert.pretrain.state import build
from jaxbert.progress import peak_flops

from . import figures, measure, table
from .warn import MAX_EPOCHS, warnings

__all__ = ["plan", "warnings", "MAX_EPOCHS", "PLAN_FILE"]

PLAN_FILE = "plan.json"


def plan(config: ml_collections.ConfigDict, workdir: str, device: str | None = None,
         tokens_per_s: float | None = None) -> dict:
  """The plan of a run of `config` in `workdir` (written to WORKDIR/plan.json, printed).

  `device`: a GPU to compile the step for as well, without one, through jaxbert.targets
  (its names: h100, h200, a100, a6000); the run's figures then take its micro-batch.
  `tokens_per_s`: the throughput to plan with instead of a burst of steps on this machine.
  Nothing in the workdir but plan.json is written; its checkpoints, if any, are left as they are.
  """
  if tokens_per_s is not None and not tokens_per_s > 0:
    raise config_lib.ConfigError(f"tokens_per_s={tokens_per_s} must be > 0: the training "
                                 "throughput to plan with, or None to measure it here")
  requested = config  # unresolved: a GPU target fills in its own "auto" dtype
  config = config_lib.resolve(config)
  model, tx, init = build(config)
  layout = loop.layout(config, init, parallel.make_mesh())
  abstract_state, _, batch_sharding = layout
  store, corpus = _corpus(config, workdir)
  predicted = masking.num_masked(config.data.mask_rate, config.data.seq_len)
  per_token = flops_per_token(model.config, predicted, config.data.seq_len)
  train_step = step_lib.make_train_step(model, tx, config, layout[1:])
  chosen = measure.choose(train_step, config, abstract_state, batch_sharding)
  memory, speed = _measure(train_step, config, store, init, layout, chosen, per_token,
                           time_it=tokens_per_s is None)
  if tokens_per_s is not None:
    speed.update(source="given", tokens_per_s=float(tokens_per_s))
  elif device:  # this machine's rate says nothing of the GPU's: plan with an assumed MFU
    tokens_per_s = _assumed_rate(device, requested.model.dtype, config, per_token)
    if tokens_per_s:
      speed.update(source="given", tokens_per_s=tokens_per_s, assumed_mfu=ASSUMED_MFU)
  gpu = _gpu_compile(requested, device) if device else None
  speed.update(_mfu(speed, per_token, device, requested.model.dtype, config))
  rows = (gpu or {}).get("result", {}).get("micro_batch") or chosen["rows"]
  run = figures.run(config, rows, speed["tokens_per_s"], speed["compile_s"], chosen["seconds"])
  run.update(micro_batch=rows, epochs=run["rows"] / corpus["rows"])
  ramp = figures.ramp(figures.with_micro_batch(config.train, rows))
  for level in ramp:
    level["tokens_per_step"] = level["rows"] * config.data.seq_len
  result = {
      "config": _settings(config), "machine": _machine(),
      "workdir": {"path": os.path.abspath(workdir),
                  "has_checkpoint": checkpoint.has_checkpoint(workdir)},
      "params": figures.param_groups(abstract_state.params),
      "flops_per_token": per_token, "predicted_per_row": predicted,
      "micro_batch": chosen, "memory": memory, "gpu_compile": gpu,
      "ramp": ramp, "shapes": len(ramp), "throughput": speed, "corpus": corpus, "run": run,
      "checkpoint": figures.checkpoints(abstract_state, config.train, run["seconds"],
                                        run["steps"]),
  }
  if device is None and jax.default_backend() == "cpu" and config.budget_hours > 1:
    # A CPU's rate plans a day of a GPU run badly: the corpus's epochs at an H100's, beside it.
    rate = _assumed_rate("H100", requested.model.dtype, config, per_token)
    result["on_a_gpu"] = {"device": "H100", "assumed_mfu": ASSUMED_MFU, "tokens_per_s": rate,
                          "epochs": rate * config.budget_hours * 3600 / corpus["tokens"]}
  result["warnings"] = warnings(result)
  _write(workdir, result)
  print(table.render(result), flush=True)
  return result


def _corpus(config, workdir: str):
  """(token store, its figures): the store the run would read, prepared here if not cached."""
  store_config = config
  if config.init_from and not config.data.tokenizer:  # the run encodes with the source's
    store_config = ml_collections.ConfigDict(config.to_dict())
    store_config.data.tokenizer = os.path.join(config.init_from, "tokenizer.json")
    if not os.path.isfile(store_config.data.tokenizer):
      raise config_lib.ConfigError(f"init_from={config.init_from} holds no tokenizer.json; give "
                                   "the workdir of a jaxbert run, or \"\" for random init")
  stores = os.path.join(resolve_cache(config.data.cache_dir), "stores")
  before = set(os.listdir(stores)) if os.path.isdir(stores) else set()
  began = time.monotonic()
  store = workdir_lib.token_store(store_config, workdir)
  rows, seq_len = store.train.shape
  if not rows:
    raise config_lib.ConfigError(f"data.sources={config.data.sources!r} gives a token store with "
                                 f"no train rows ({store.path}); give more documents")
  return store, {
      "path": store.path, "rows": int(rows), "seq_len": int(seq_len),
      "tokens": int(rows * seq_len),
      "counted_tokens": int(store.manifest["counts"]["train"]["tokens"]),
      "cached": os.path.basename(store.path) in before, "prepare_s": time.monotonic() - began}


def _measure(train_step, config, store, init, layout, chosen, per_token, time_it):
  """(the step's memory at the run's micro-batch, the throughput figures) from compiling the
  step at the burst's rows (and at the run's, when they differ and the rule has not measured
  it), and with `time_it` a burst of steps."""
  abstract_state, _, batch_sharding = layout
  rows = chosen["rows"]
  r = (measure.burst_rows(rows, per_token, config.data.seq_len, batch_sharding.mesh.size)
       if time_it else rows)
  stream = measure.batches(config, store, r)
  first = next(stream)
  compiled, compile_s = measure.compile_step(train_step, abstract_state,
                                             measure.spec(first, r, batch_sharding))
  if r == rows:
    memory = measure.memory(compiled, config.train)
  elif chosen["need_bytes"] is not None:  # the rule measured it; its breakdown is not kept
    limit, source = measure.memory_limit(config.train)
    memory = {"backend": jax.default_backend(), "need_bytes": chosen["need_bytes"],
              "limit_bytes": limit, "limit_source": source,
              "headroom": microbatch.MEMORY_HEADROOM, "fits": True}
  else:
    at_rows, _ = measure.compile_step(train_step, abstract_state,
                                      measure.spec(first, rows, batch_sharding))
    memory = measure.memory(at_rows, config.train)
  memory["rows"] = rows
  if chosen["error"]:
    memory["fits"] = False
  speed = {"source": "measured", "backend": jax.default_backend(), "rows": r,
           "micro_batches": 1, "lower_bound": r < rows, "compile_s": compile_s}
  if time_it:
    speed.update(measure.burst(compiled, config, init, layout, itertools.chain([first], stream), r))
  return memory, speed


def _gpu_compile(config, device: str) -> dict:
  """targets.compile_for's figures for `device`, or why there are none."""
  from jaxbert import targets  # the XLA GPU compiler is imported there, only when asked for

  try:
    return {"device": device, "result": dict(targets.compile_for(config, device)), "error": None}
  except config_lib.ConfigError as e:  # no plugin, an unknown device: said in the warnings
    return {"device": device, "result": {}, "error": str(e)}


# The model FLOP utilisation a plan for a GPU assumes when no throughput is given: about what
# jaxbert's day step is to reach on an H100 or H200; pass tokens_per_s for a measured figure.
ASSUMED_MFU = 0.4


def _assumed_rate(device, requested_dtype, config, per_token) -> float | None:
  """Tokens/s at ASSUMED_MFU of the device's bf16 peak; None where the peak is not known."""
  dtype = "bfloat16" if requested_dtype == "auto" else requested_dtype
  peak = peak_flops(device.upper(), dtype, config.train.peak_tflops)
  return ASSUMED_MFU * peak / per_token if peak else None


def _mfu(speed, per_token, device, requested_dtype, config) -> dict:
  """Model FLOP utilisation where the device's peak is known: a given throughput against the
  named device, a measured one against this machine's device (None on CPUs)."""
  if speed["source"] == "given" and device:
    # "auto" computes in bfloat16 on a GPU (config.compute_dtype)
    kind, dtype = device, "bfloat16" if requested_dtype == "auto" else requested_dtype
  else:
    kind, dtype = jax.local_devices()[0].device_kind, config.model.dtype
  # progress.PEAK_BF16_FLOPS spells names as device_kind does ("H100"); targets', "h100"
  peak = (peak_flops(kind, dtype, config.train.peak_tflops)
          or peak_flops(kind.upper(), dtype, config.train.peak_tflops))
  if peak is None:
    return {"mfu": None}
  return {"mfu": speed["tokens_per_s"] * per_token / peak, "mfu_device": kind}


def _settings(config) -> dict:
  m, t = config.model, config.train
  return {"arch": m.arch, "num_layers": m.num_layers, "hidden_size": m.hidden_size,
          "vocab_size": m.vocab_size, "dtype": m.dtype, "seq_len": config.data.seq_len,
          "budget_hours": config.budget_hours, "batch_size": t.batch_size,
          "micro_batch": t.micro_batch, "ramp_until": t.ramp_until, "ramp_levels": t.ramp_levels,
          "max_steps": t.max_steps, "stop_steps": t.stop_steps, "keep": t.keep,
          "max_epochs": config.data.get("max_epochs")}


def _machine() -> dict:
  devices = jax.devices()
  return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "devices": len(devices)}


def _write(workdir: str, result: dict):
  """WORKDIR/plan.json, written aside and renamed: a reader never sees half of it."""
  os.makedirs(workdir, exist_ok=True)
  files.write_json(os.path.join(workdir, PLAN_FILE), result, sort_keys=True)
