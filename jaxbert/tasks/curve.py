"""The label-budget curve: how much pretraining gives as the labels grow.

  python run.py --mode=finetune --workdir=workdirs/quick --config=configs/quick.py \
      --config.finetune.train_sizes=100,300,1000,0

fine-tunes every model of the table (pretrained, no pretraining, CNN, bag of words) on nested,
class-stratified subsets of the train split, scores each on the same dev split, and prints one
row per size with the pretrained model's gain over the best baseline; WORKDIR/label_curve.json and
WORKDIR/label_curve.png hold the same. Pretraining is worth most where labels are few, and the
curve shows where on a user's data it stops paying.
"""

import os

import numpy as np

from jaxbert import files, plots
from jaxbert.config import ConfigError

from . import tables

BASELINES = ("no_pretraining", "cnn", "bag_of_words")


def parse_sizes(cfg) -> list[int]:
  """finetune.train_sizes, a comma-separated string, as numbers; empty: the one size of
  finetune.max_train_examples (0 = all)."""
  spec = cfg.train_sizes
  try:
    sizes = [int(p) for p in str(spec).split(",") if p.strip()] or [cfg.max_train_examples]
  except ValueError:
    raise ConfigError(f"finetune.train_sizes={spec!r}: use whole numbers, e.g. \"100,300,0\" "
                      "(0 = all labels)") from None
  if min(sizes) < 0:
    raise ConfigError(f"finetune.train_sizes={spec!r}: sizes must be >= 0 (0 = all labels)")
  return sizes


def train_sizes(cfg, num_train: int) -> list[int]:
  """The training-set sizes of `parse_sizes`, ascending; a size of 0, or one above the split's,
  is the whole split, listed once."""
  return sorted({n if 0 < n < num_train else num_train for n in parse_sizes(cfg)})


def label_order(labels: np.ndarray, regression: bool) -> np.ndarray:
  """An order of the train split whose every prefix is a class-stratified random sample: the
  subsets of the curve are its prefixes, so each size holds all of the smaller ones.

  An example's place is its rank within its class (in a seed-0 permutation, jittered within the
  rank) over the class's size, so a prefix of n holds each class within about one example of n
  times its share.
  """
  rng = np.random.default_rng(0)
  order = rng.permutation(len(labels))
  if regression:
    return order
  place = np.empty(len(labels))
  for c in np.unique(labels):
    members = order[labels[order] == c]
    place[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
  return np.argsort(place, kind="stable")


def points(rows: list[dict]) -> dict:
  """{task: [{train_examples, metric, <model>, <model>_seeds, gain}, ...]}: each task's headline
  column at each size; gain is the pretrained score minus the best baseline's."""
  out = {}
  for r in rows:
    if not r.get("headline"):
      continue
    point = {k: r[k] for k in ("train_examples", "examples", "epochs", "metric") if k in r}
    for m in tables.MODELS:
      if m in r:
        point[m] = r[m]
        if m + "_seeds" in r:
          point[m + "_seeds"] = r[m + "_seeds"]
    present = [r[m] for m in BASELINES if m in r]
    if present:
      point["gain"] = r["pretrained"] - max(present)
    out.setdefault(r["task"], []).append(point)
  return out


def table(curve: dict) -> str:
  """Markdown: one line per task and size; seed min–max in brackets."""
  models = [m for m in tables.MODELS if all(m in p for ps in curve.values() for p in ps)]
  gain = all("gain" in p for ps in curve.values() for p in ps)
  lines = ["| task | labels | metric | " + " | ".join(tables.HEADERS[m] for m in models) +
           (" | gain over the best baseline |" if gain else " |"),
           "| --- | ---: | --- | " + " | ".join("---:" for _ in models) +
           (" | ---: |" if gain else " |")]
  for task, ps in curve.items():
    for p in ps:
      cells = [tables.cell(p, m) for m in models] + ([f"{p['gain']:+.4f}"] if gain else [])
      lines.append(f"| {task} | {p['train_examples']:,} | {p['metric']} | " +
                   " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(curve: dict, path: str) -> None:
  """label_curve.png: score against labels (log scale), a line per model, seed min–max shaded."""
  size = (6 * len(curve), 4.2)
  with plots.figure(path, 1, len(curve), figsize=size, squeeze=False) as (fig, axes):
    for ax, (task, ps) in zip(axes[0], curve.items()):
      xs = [p["train_examples"] for p in ps]
      for m in tables.MODELS:
        if not all(m in p for p in ps):
          continue
        line, = ax.plot(xs, [p[m] for p in ps], "o-", label=tables.HEADERS[m])
        if all(p.get(m + "_seeds") for p in ps):
          ax.fill_between(xs, [min(p[m + "_seeds"]) for p in ps],
                          [max(p[m + "_seeds"]) for p in ps], color=line.get_color(), alpha=0.15)
      ax.set_xscale("log")
      ax.set(xlabel="training labels", ylabel=f"dev {ps[0]['metric']}", title=task)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)


def write(workdir: str, curve: dict, meta: dict) -> str:
  """WORKDIR/label_curve.json and label_curve.png; returns the png's path."""
  files.write_json(os.path.join(workdir, "label_curve.json"), {**meta, "curve": curve})
  png = os.path.join(workdir, "label_curve.png")
  plot(curve, png)
  return png
