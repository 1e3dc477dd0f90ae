"""The record every labelled set is read into: splits of texts and labels, and how to score."""
import dataclasses

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
