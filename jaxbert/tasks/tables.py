"""Scores of fine-tuned models and the tables that show them beside the baselines."""

import statistics

import numpy as np

from jaxbert.data.labelled import column
from jaxbert.tasks import scores

MODELS = ("pretrained", "no_pretraining", "cnn", "bag_of_words")
HEADERS = {"pretrained": "pretrained", "no_pretraining": "no pretraining", "cnn": "CNN",
           "bag_of_words": "bag of words"}


def score(task, predictions: dict) -> dict:
  """{column: score} of dev predictions {split: array}, every metric on every dev split."""
  return {column(split, m): scores.SCORES[m](predictions[split], task.dev[split].labels)
          for split in task.dev for m in task.metrics}


def aggregate(per_seed: list[dict]) -> tuple[dict, dict]:
  """({column: median over seeds}, {column: [score per seed]}) of per-seed score dicts.

  Each column's median is taken on its own (MRPC's median F1 and median accuracy may come from
  different seeds), as the cramming paper reports medians per metric.
  """
  lists = {c: [s[c] for s in per_seed] for c in per_seed[0]}
  return {c: float(statistics.median(v)) for c, v in lists.items()}, lists


def cell(r: dict, key: str, percent: bool = False) -> str:
  """r[key], and the min–max of r[key + "_seeds"] in brackets when there are several seeds."""
  fmt = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: f"{v:.4f}")
  seeds = r.get(key + "_seeds") or []
  spread = f" ({fmt(min(seeds))}–{fmt(max(seeds))})" if len(seeds) > 1 else ""
  return fmt(r[key]) + spread


def table(rows: list[dict], percent: bool = False) -> str:
  """Markdown: one line per (task, metric), a column per model; seed min–max in brackets."""
  models = _present(rows)
  lines = ["| task | metric | " + " | ".join(HEADERS[m] for m in models) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in models) + " |"]
  lines += [f"| {r['task']} | {r['metric']} | " +
            " | ".join(cell(r, m, percent) for m in models) + " |"
            for r in rows]
  return "\n".join(lines)


def glue_average(rows: list[dict]) -> dict:
  """{model: mean of the rows marked in_average}, as the cramming paper averages GLUE.

  The paper's GLUE column is the plain mean of nine numbers: MNLI matched and mismatched as two
  entries, then one per other task (Matthews for CoLA, F1 for MRPC and QQP, Pearson for STS-B,
  accuracy for the rest; GLUE lists F1 and Pearson first for those tasks). WNLI is left out.
  """
  chosen = [r for r in rows if r["in_average"]]
  return {m: float(np.mean([r[m] for r in chosen])) if chosen else float("nan")
          for m in _present(rows)}


def _present(rows: list[dict]) -> list[str]:
  """The MODELS every row scores (the pretrained one alone under finetune.baselines=False)."""
  return [m for m in MODELS if all(m in r for r in rows)]
