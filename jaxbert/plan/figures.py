"""The plan's figures that follow from the config and a throughput alone: parameter groups, the
batch ramp, the steps, tokens and epochs a run gets, checkpoint sizes. No compiling, no data.

The ramp is read off step.accumulation itself (by bisection over progress, or over steps when
step-bound), so the plan follows the trainer's rule wherever it changes.
"""

import math

import jax
import ml_collections
import numpy as np

from jaxbert.model import count_params
from jaxbert.pretrain import step as step_lib

BISECTIONS = 60  # halvings of [0, 1]: below float resolution


def param_groups(params) -> dict:
  """Counts of the embeddings, the encoder's layers, and the head: what is left (the final norm,
  and original's transform and decoder bias; the decoder itself is the tied embedding)."""
  encoder = params.get("encoder", {})
  embeddings = count_params(encoder.get("embeddings", {}))
  layers = sum(count_params(v) for k, v in encoder.items() if k.startswith("layer_"))
  total = count_params(params)
  return {"embeddings": embeddings, "encoder_layers": layers, "head": total - embeddings - layers,
          "total": total}


def nbytes(tree) -> int:
  """Bytes of the arrays (or ShapeDtypeStructs) of a tree."""
  return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def with_micro_batch(train_cfg, rows: int):
  """A copy of the train config with its micro-batch set, which the ramp's levels divide."""
  tc = ml_collections.ConfigDict(train_cfg.to_dict())
  tc.micro_batch = rows
  return tc


def _least_t(reaches) -> float:
  """The least t in [0, 1] with reaches(t), for a predicate that stays true once true."""
  if reaches(0.0):
    return 0.0
  lo, hi = 0.0, 1.0
  for _ in range(BISECTIONS):
    mid = (lo + hi) / 2
    lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
  return hi


def _first_step(train_cfg, micro_batches: int, max_steps: int) -> int:
  """Step-bound: the first step k whose t = k / max_steps uses `micro_batches` or more."""
  reaches = lambda k: step_lib.accumulation(train_cfg, k / max_steps) >= micro_batches
  if reaches(0):
    return 0
  lo, hi = 0, max_steps  # t = 1 reaches every level of the ramp
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
  return hi


def ramp(train_cfg) -> list[dict]:
  """The levels step.accumulation uses over progress t in [0, 1]: micro-batches per step, rows
  and the span of t at each. Each level is one compiled step shape."""
  top = step_lib.accumulation(train_cfg, 1.0)
  levels = [n for n in step_lib.accumulation_levels(train_cfg) if n <= top]
  starts = [_least_t(lambda t: step_lib.accumulation(train_cfg, t) >= n) for n in levels]
  ends = starts[1:] + [1.0]
  return [{"micro_batches": n, "rows": n * train_cfg.micro_batch, "from_t": a, "to_t": b}
          for n, a, b in zip(levels, starts, ends) if b > a]


def _steps_per_level(train_cfg, levels: list[dict], max_steps: int) -> list[int]:
  """Step-bound: how many of the max_steps steps each level takes, counted in steps."""
  firsts = [_first_step(train_cfg, level["micro_batches"], max_steps) for level in levels]
  return [b - a for a, b in zip(firsts, firsts[1:] + [max_steps])]


def run(config, micro_batch: int, tokens_per_s: float, compile_s: float,
        startup_s: float = 0.0) -> dict:
  """Where a run of `config` ends at `tokens_per_s`: steps, seconds, rows and tokens drawn, per
  level of the ramp and in all.

  Budget-bound, t = elapsed / budget, so each level gets its span of the budget, less one compile
  of its step; step-bound, t = step / max_steps, so each level gets its share of the steps and
  takes what they cost. Either way the budget, max_steps and stop_steps end it, whichever first.
  `startup_s` counts against the budget before the first step (choosing the micro-batch).
  """
  tc = with_micro_batch(config.train, micro_batch)
  seq_len, budget_s = config.data.seq_len, config.budget_hours * 3600
  end = min(n for n in (tc.max_steps, tc.stop_steps, math.inf) if n > 0)
  cut_by = "stop_steps" if end == tc.stop_steps else "max_steps"
  steps, seconds, rows, levels = 0, startup_s, 0.0, []
  ends_by = "max_steps" if tc.max_steps > 0 else "budget"
  levels_of_ramp = ramp(tc)
  if tc.max_steps > 0:
    shares = _steps_per_level(tc, levels_of_ramp, tc.max_steps)
  for i, level in enumerate(levels_of_ramp):
    step_s = level["rows"] * seq_len / tokens_per_s
    room = max(0.0, budget_s - seconds - compile_s) / step_s
    if tc.max_steps > 0:
      planned = shares[i]
    else:  # the level lasts until the clock reaches its end of t, whatever came before
      planned = max(0.0, budget_s * level["to_t"] - seconds - compile_s) / step_s
    n = min(planned, room, end - steps)
    if tc.max_steps > 0:
      n = math.floor(n)
    if n > 0:
      steps, seconds, rows = steps + n, seconds + compile_s + n * step_s, rows + n * level["rows"]
      levels.append({**level, "tokens_per_step": level["rows"] * seq_len, "steps": n,
                     "seconds": compile_s + n * step_s})
    if n < planned:  # cut short: no level after this one
      ends_by = "budget" if room <= end - steps + n else cut_by
      break
  return {"budget_s": budget_s, "steps": int(steps), "seconds": min(seconds, budget_s),
          "rows": rows, "tokens": rows * seq_len, "ends_by": ends_by, "levels": levels,
          "startup_s": startup_s, "compile_s": compile_s}


def checkpoints(abstract_state, train_cfg, seconds: float, steps: int) -> dict:
  """Bytes of one checkpoint (params, optimizer state and step), how many the run saves (each
  train.checkpoint_minutes, each checkpoint_steps, and at the end) and the disk the kept take."""
  params = nbytes(abstract_state.params)
  total = nbytes(abstract_state)
  saves = int(seconds // (train_cfg.checkpoint_minutes * 60)) + 1
  if train_cfg.checkpoint_steps > 0:
    saves += steps // train_cfg.checkpoint_steps
  kept = min(saves, train_cfg.keep) if train_cfg.keep > 0 else saves  # orbax: 0 keeps all
  return {"bytes": total, "params_bytes": params, "optimizer_bytes": total - params,
          "saves": saves, "kept": kept, "disk_bytes": kept * total}
