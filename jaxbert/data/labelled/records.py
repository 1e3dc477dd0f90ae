"""The record every labelled set is read into: splits of texts and labels, and how to score."""
import dataclasses

from jaxbert.config import ConfigError

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
  """Examples of one split: texts, optional second texts (pairs) and labels.

  Labels are class indices (int32) for classification, floats (float32) for regression.
  """
  text_a: tuple
  text_b: tuple | None
  labels: np.ndarray

  def __len__(self):
    return len(self.text_a)

  def subset(self, index) -> "Split":
    pick = lambda xs: tuple(xs[i] for i in index)
    return Split(pick(self.text_a), None if self.text_b is None else pick(self.text_b),
                 self.labels[np.asarray(index, int)])


@dataclasses.dataclass(frozen=True)
class Task:
  """A train split, one or more dev splits, and how predictions are scored.

  classes: class names (index = label) for classification; None for regression (one output).
  dev: {split name: Split}; "dev" for most tasks, "matched"/"mismatched" for MNLI.
  metrics: names in jaxbert.scores, each computed on every dev split.
  headline: the columns (see `columns`) that stand for the task in an average.
  """
  name: str
  train: Split
  dev: dict
  classes: tuple | None
  metrics: tuple
  headline: tuple = ()

  @property
  def regression(self) -> bool:
    return self.classes is None

  @property
  def pair(self) -> bool:
    return self.train.text_b is not None

  @property
  def num_outputs(self) -> int:
    return 1 if self.regression else len(self.classes)

  def columns(self) -> list[str]:
    """One column per (dev split, metric): "accuracy", or "accuracy (matched)"."""
    return [column(split, metric) for split in self.dev for metric in self.metrics]


def column(split: str, metric: str) -> str:
  return metric if split == "dev" else f"{metric} ({split})"


def merge(tasks: list[Task]) -> Task:
  """Several labelled sets as one task: train splits united, class labels matched by name (the
  union of the names, sorted), each part's dev split scored apart and all of them together
  ("all", the headline). Parts must agree on single texts or pairs and on classes or values."""
  names = [t.name for t in tasks]
  if len(set(names)) != len(names):
    raise ConfigError(f"merged task: two parts are both named {names}; rename a file")
  if len({t.regression for t in tasks}) > 1 or len({t.pair for t in tasks}) > 1:
    raise ConfigError(f"merged task {'+'.join(names)}: its parts must all be classification or "
                      "all regression, and all single texts or all pairs")
  first = tasks[0]
  if first.regression:
    classes, remap = None, lambda task, split: split
  else:
    classes = tuple(sorted({c for t in tasks for c in t.classes}))
    index = {c: i for i, c in enumerate(classes)}

    def remap(task, split):
      ids = np.array([index[c] for c in task.classes], np.int32)
      return Split(split.text_a, split.text_b, ids[split.labels])
  parts = [(t, remap(t, s)) for t in tasks for s in t.dev.values()]
  train = _concat([remap(t, t.train) for t in tasks])
  dev = {f"{t.name}" if len(t.dev) == 1 else f"{t.name} {k}": remap(t, s)
         for t in tasks for k, s in t.dev.items()}
  dev["all"] = _concat([s for _, s in parts])
  metrics = ("pearson", "spearman") if classes is None else (
      ("accuracy", "f1") if len(classes) == 2 else ("accuracy",))
  return Task("+".join(names), train, dev, classes, metrics, headline=(column("all", metrics[0]),))


def _concat(splits: list[Split]) -> Split:
  pair = splits[0].text_b is not None
  return Split(tuple(t for s in splits for t in s.text_a),
               tuple(t for s in splits for t in s.text_b) if pair else None,
               np.concatenate([s.labels for s in splits]))
