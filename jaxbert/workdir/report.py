"""A run at a glance: WORKDIR/curves.png and WORKDIR/report.md, made from the workdir's files.

Both are views of config.json, metrics.jsonl and finetune.json, so they can be (re)made for any
workdir at any time: `python run.py --mode=report --workdir=DIR`. Training makes them at its end.
"""

import json
import os

from jaxbert import files, plots
from jaxbert import workdir as workdir_lib
from jaxbert.workdir import metrics as metrics_log


def _plot(records: list[dict], path: str):
  train = [r for r in records if r["kind"] == "train"]
  # Held-out points carry their own budget time and tokens; older records (and --mode=evaluate's)
  # only a step, placed by the train line of that step.
  at = {r["step"]: r for r in train}
  evals = [{**at.get(r["step"], {}), **{k: v for k, v in r.items() if v is not None}}
           for r in records if r["kind"] == "eval"]
  evals = [e for e in evals if "elapsed_s" in e and "tokens" in e]
  minutes = [r["elapsed_s"] / 60 for r in train]
  tokens = [r["tokens"] / 1e6 for r in train]
  with plots.figure(path, 2, 3, figsize=(14, 7)) as (fig, axes):
    for row, (xs, key, scale, label) in enumerate(((minutes, "elapsed_s", 60, "minutes of budget"),
                                                   (tokens, "tokens", 1e6, "tokens seen (M)"))):
      loss, lr, speed = axes[row]
      loss.plot(xs, [r["loss"] for r in train], lw=1, label="train (predicted positions)")
      if evals:
        loss.plot([e[key] / scale for e in evals], [e["mlm_loss"] for e in evals], "o-", ms=4,
                  label="held-out")
        loss.axhline(evals[-1]["unigram_loss"], color="gray", ls=":", label="unigram baseline")
      loss.set(xlabel=label, ylabel="MLM loss")
      loss.legend(fontsize=8)
      lr.plot(xs, [r["lr"] for r in train], lw=1)
      lr.set(xlabel=label, ylabel="learning rate")
      speed.plot(xs, [r["tokens_per_s"] / 1e3 for r in train], lw=1)
      speed.set(xlabel=label, ylabel="thousand tokens/s")


def _hours(h: float) -> str:
  return f"{h * 60:.0f} minutes" if h < 1 else f"{h:g} hours"


def _count(n: float) -> str:
  return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,.0f}"


def _median(xs):
  xs = sorted(xs)
  return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2 if xs else None


def markdown(config: dict, records: list[dict], finetune: dict | None) -> str:
  m, d = config["model"], config["data"]
  start = next((r for r in records if r["kind"] == "start"), {})
  train = [r for r in records if r["kind"] == "train"]
  evals = [r for r in records if r["kind"] == "eval"]
  skips = [r for r in records if r["kind"] == "skip"]
  lines = ["# jaxbert run report", "",
           f"- model: {m['arch']}, {m['num_layers']} layers × {m['hidden_size']}, "
           f"{m['num_heads']} heads, FFN {m['ffn_size']}, vocabulary {m['vocab_size']}"
           + (f", {_count(start['params'])} parameters" if "params" in start else ""),
           f"- data: {d['sources']}, rows of {d['seq_len']} tokens, masking {d['mask_rate']}"
           + (f", {start['train_rows']:,} training rows" if "train_rows" in start else ""),
           f"- optimizer: {config['optim']['name']}, {config['optim']['schedule']} schedule, "
           f"peak lr {config['optim']['peak_lr']}, batch {config['train']['batch_size']} rows",
           f"- budget: {_hours(config['budget_hours'])}"
           + (f", {config['train']['max_steps']} steps" if config["train"]["max_steps"] else "")]
  if train:
    last = train[-1]
    lines.append(f"- trained: {last['step']:,} steps, {_count(last['tokens'])} tokens in "
                 f"{last['elapsed_s'] / 3600:.2f} h of budget; median "
                 f"{_median([r['tokens_per_s'] for r in train]):,.0f} tokens/s, "
                 f"{_median([r['tflops_per_s'] for r in train]):.3g} TFLOP/s"
                 + (f", MFU {_median([r['mfu'] for r in train]):.1%}" if "mfu" in last else
                    " (MFU: peak of this device unknown)"))
  if skips:
    lines.append(f"- skipped batches (non-finite loss): steps {[r['step'] for r in skips]}")
  if evals:
    e = evals[-1]
    lines += ["", f"## Held-out MLM (step {e['step']}, {e['heldout_rows']:,} rows)", "",
              "| | loss | accuracy | accuracy on replaced tokens |", "|---|---|---|---|",
              f"| model | {e['mlm_loss']:.3f} | {e['mlm_accuracy']:.2%} | "
              f"{e['replaced_accuracy']:.2%} |",
              f"| unigram baseline | {e['unigram_loss']:.3f} | {e['unigram_accuracy']:.2%} | "
              f"{e['unigram_replaced_accuracy']:.2%} |"]
  points = [r for r in evals if r.get("elapsed_s") is not None]
  if len(points) > 1:
    shown = points[::-(-len(points) // 12)]  # at most 12 rows, the last always among them
    shown = shown if shown[-1] is points[-1] else shown + [points[-1]]
    lines += ["", f"## Held-out MLM during training ({len(points)} points, masking "
              f"{config['eval'].get('mask_rate', d['mask_rate'])})", "",
              "| step | minutes of budget | tokens | loss | accuracy |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['step']:,} | {r['elapsed_s'] / 60:.1f} | {_count(r['tokens'])} | "
              f"{r['mlm_loss']:.3f} | {r['mlm_accuracy']:.2%} |" for r in shown]
  if finetune and "table" in finetune:
    lines += ["", f"## Fine-tuning ({finetune['task']}, checkpoint step "
              f"{finetune['checkpoint_step']}, median of {finetune['seeds']} seeds)", "",
              finetune["table"]]
  lines += ["", "Curves: [curves.png](curves.png); all numbers: metrics.jsonl.", ""]
  return "\n".join(lines)


def write(workdir: str) -> str:
  """Writes WORKDIR/report.md and, when there are train records, WORKDIR/curves.png."""
  config = workdir_lib.read_config(workdir).to_dict()
  records = metrics_log.read(workdir)
  finetune = None
  path = os.path.join(workdir, "finetune.json")
  if os.path.exists(path):
    with open(path) as f:
      finetune = json.load(f)
  if any(r["kind"] == "train" for r in records):
    _plot(records, os.path.join(workdir, "curves.png"))
  text = markdown(config, records, finetune)
  path = os.path.join(workdir, "report.md")
  files.write_text(path, text)
  return path
