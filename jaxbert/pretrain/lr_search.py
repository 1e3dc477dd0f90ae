"""A pretraining learning-rate search: one short run per optim.peak_lr, scored by held-out MLM.

  python run.py --mode=lr_search --config=configs/quick.py --workdir=workdirs/lr-quick

Each value of lr_search.peak_lrs trains in WORKDIR/lr=VALUE, a workdir like any other (it resumes
if stopped; a finished one is read back, not trained again), with the config's data, seed and
schedule, optim.peak_lr=VALUE and a budget of lr_search.budget_minutes (train.max_steps, if set,
ends it sooner). The runs share one token store: their data settings, and so its key, are the
same. Each is scored by the held-out evaluation that ends it. Gives the table on stdout,
WORKDIR/lr_search.json (its rows), WORKDIR/lr_search.png (loss and accuracy against the rate) and,
last, the override of the best, for the full run:

  best: --config.optim.peak_lr=5e-3 (held-out MLM loss 3.612)

A value whose loss stops being finite is shown as diverged (and is tried again by a rerun); the
best is the lowest loss of the rest. Fine-tuning does not follow (finetune.after_training is the
train mode's). Another budget_minutes wants another WORKDIR: a finished run given more budget
trains on, its schedule stretched mid-way, like any resumed workdir.
"""

import math
import os

import jax
import ml_collections

from jaxbert import files, plots
from jaxbert.config import ConfigError
from jaxbert.data import sources
from jaxbert.workdir import metrics as metrics_log

from . import loop
from .rollback import NonFiniteLoss


def parse_values(values) -> list[tuple[str, float]]:
  """(label, rate) of each value of lr_search.peak_lrs, a list or a comma-separated string; the
  label is the value as written (a number's shortest form) and names the run's workdir."""
  items = values.split(",") if isinstance(values, str) else list(values or [])
  if not items:
    raise ConfigError("lr_search.peak_lrs is empty; give peak learning rates to try, e.g. "
                      "--config.lr_search.peak_lrs=1e-3,2e-3,5e-3")
  out = []
  for item in items:
    label = item.strip() if isinstance(item, str) else f"{item:g}"
    try:
      rate = float(label)
    except ValueError:
      rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
      raise ConfigError(f"lr_search.peak_lrs={values!r}: {label!r} is not a positive number; give "
                        "peak learning rates separated by commas, e.g. 1e-3,2e-3,5e-3")
    if any(rate == r for _, r in out):
      raise ConfigError(f"lr_search.peak_lrs={values!r} lists {rate:g} twice; give each rate once")
    out.append((label, rate))
  return out


def run_config(config: ml_collections.ConfigDict, rate: float) -> ml_collections.ConfigDict:
  """The config of one run of the search: `config` with this peak rate and the search's budget."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.optim.peak_lr = rate
  c.budget_hours = config.lr_search.budget_minutes / 60
  return c


def run_dir(workdir: str, label: str) -> str:
  return os.path.join(workdir, f"lr={label}")


def score(run_workdir: str) -> dict:
  """steps, tokens and held-out MLM of a finished run, from its metrics.jsonl: its final
  evaluation is the one of its last step."""
  records = metrics_log.read(run_workdir)
  evals = [r for r in records if r["kind"] == "eval"]
  if not evals:
    raise FileNotFoundError(f"{run_workdir}/metrics.jsonl holds no evaluation; rerun the "
                            "search to finish the run")
  last = max(evals, key=lambda r: r["step"])
  train = [r for r in records if r["kind"] == "train" and r["step"] <= last["step"]]
  return {"steps": last["step"], "tokens": train[-1]["tokens"] if train else 0,
          "mlm_loss": last["mlm_loss"], "mlm_accuracy": last["mlm_accuracy"],
          "unigram_loss": last["unigram_loss"]}


def best(rows: list[dict]) -> dict | None:
  """The row of the lowest finite held-out MLM loss (the first on a tie); None if none."""
  scored = [r for r in rows if r.get("mlm_loss") is not None and math.isfinite(r["mlm_loss"])]
  return min(scored, key=lambda r: r["mlm_loss"]) if scored else None


def override(row: dict) -> str:
  return f"--config.optim.peak_lr={row['value']}"


def table(rows: list[dict], top: dict | None) -> str:
  """The rows as a plain-text table, the best marked."""
  width = max(len("peak_lr"), *(len(r["value"]) for r in rows))
  lines = [f"{'peak_lr':<{width}}  {'steps':>7}  {'held-out MLM loss':>17}  {'accuracy':>8}"]
  for r in rows:
    if r.get("mlm_loss") is None:
      lines.append(f"{r['value']:<{width}}  {'':>7}  {'diverged':>17}")
      continue
    lines.append(f"{r['value']:<{width}}  {r['steps']:>7}  {r['mlm_loss']:>17.3f}  "
                 f"{r['mlm_accuracy']:>8.2%}" + ("  <- best" if r is top else ""))
  return "\n".join(lines)


def summary(config: ml_collections.ConfigDict, rows: list[dict]) -> dict:
  """What lr_search.json holds: the settings, the rows in the order tried and the best."""
  top = best(rows)
  return {"budget_minutes": config.lr_search.budget_minutes,
          "max_steps": config.train.max_steps, "seed": config.seed,
          "rows": [{**r, "best": r is top} for r in rows],
          "best": None if top is None else top["value"],
          "override": None if top is None else override(top)}


def plot(rows: list[dict], path: str):
  """Held-out MLM loss and accuracy against the peak rate (log scale), the best marked."""
  scored = [r for r in rows if r.get("mlm_loss") is not None]
  top = best(rows)
  with plots.figure(path, 1, 2, figsize=(10, 4)) as (fig, (loss, acc)):
    for ax, key, label in ((loss, "mlm_loss", "held-out MLM loss"),
                           (acc, "mlm_accuracy", "held-out MLM accuracy")):
      ax.plot([r["peak_lr"] for r in scored], [r[key] for r in scored], "o-")
      if top is not None:
        ax.plot([top["peak_lr"]], [top[key]], "*", ms=14, label=f"best: {top['value']}")
        ax.legend(fontsize=8)
      ax.set(xscale="log", xlabel="optim.peak_lr", ylabel=label)
    if scored and "unigram_loss" in scored[0]:  # the same for every run: one token store
      loss.axhline(scored[0]["unigram_loss"], color="gray", ls=":", label="unigram baseline")
      loss.legend(fontsize=8)
    diverged = [r["value"] for r in rows if r.get("mlm_loss") is None]
    if diverged:
      fig.suptitle(f"diverged: {', '.join(diverged)}", fontsize=9)


def search(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or reads back) every value's run, then prints and writes the results; returns what
  lr_search.json holds."""
  values = parse_values(config.lr_search.peak_lrs)
  minutes = config.lr_search.budget_minutes
  if not (isinstance(minutes, (int, float)) and minutes > 0):
    raise ConfigError(f"lr_search.budget_minutes={minutes!r} must be > 0: each run's budget")
  specs = sources.as_list(config.data.sources)
  if specs and all(spec.startswith("task:") for spec in specs):
    raise ConfigError(f"data.sources={config.data.sources!r} holds no rows out (task: sources "
                      "keep their dev rows unseen), and lr_search scores each run by held-out "
                      "MLM loss; add a source that holds some out, e.g. embedded")
  rows = []
  for i, (label, rate) in enumerate(values, 1):
    directory = run_dir(workdir, label)
    print(f"lr_search {i}/{len(values)}: optim.peak_lr={label} in {directory}", flush=True)
    row = {"value": label, "peak_lr": rate, "workdir": directory}
    try:
      results = loop.train_and_evaluate(run_config(config, rate), directory)
    except NonFiniteLoss as e:  # too high a rate is one of the answers the search can give
      print(f"lr_search: optim.peak_lr={label} diverged: {e}", flush=True)
      rows.append({**row, "diverged": str(e), "mlm_loss": None})
      continue
    if jax.process_index() == 0:  # the first process writes the runs' metrics.jsonl
      if not results:
        raise ConfigError(f"{directory}: its token store holds no rows out, so lr_search cannot "
                          "score it; give data.sources a source that holds some out")
      rows.append({**row, **score(directory)})
  if jax.process_index() > 0:
    return {}
  content = summary(config, rows)
  os.makedirs(workdir, exist_ok=True)  # there already, unless every run failed before starting
  files.write_json(os.path.join(workdir, "lr_search.json"), content)
  plot(rows, os.path.join(workdir, "lr_search.png"))
  top = best(rows)
  print(table(rows, top), flush=True)
  print(f"results: {os.path.join(workdir, 'lr_search.json')}, "
        f"{os.path.join(workdir, 'lr_search.png')}", flush=True)
  if top is None:
    raise ConfigError(f"lr_search.peak_lrs={config.lr_search.peak_lrs!r}: every run diverged; "
                      "try smaller rates")
  print(f"best: {override(top)} (held-out MLM loss {top['mlm_loss']:.3f})", flush=True)
  return content
