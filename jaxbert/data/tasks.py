"""Labelled tasks for fine-tuning: one record for every source, and the spec that names them.

`finetune.task` is one of
  "sentiment"                  movie-review snippets shipped in the package (labelled/SOURCES.md)
  "spam"                       SpamAssassin subject lines and message starts, also shipped
  "glue:DIR[:TASK,...]"        a GLUE directory in the standard layout (CoLA/, SST-2/, ...)
  "tfds:glue/sst2[,glue/...]"  TFDS GLUE configs already prepared in the TFDS data dir
  "file:PATH[,DEV_PATH]"       a user's CSV, TSV or JSONL file (columns: finetune.*_column)
"""
import dataclasses
import functools
import json
import lzma

import importlib_resources
import numpy as np

from jaxbert.config import ConfigError


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


# Embedded tasks: name -> (class names, metrics); files labelled/{name}_{train,dev}.jsonl.xz
EMBEDDED = {
    "sentiment": (("negative", "positive"), ("accuracy",)),
    "spam": (("ham", "spam"), ("accuracy", "f1")),  # a third is spam: F1 shows missed spam
}


@functools.cache
def _embedded_split(name: str, split: str) -> Split:
  path = importlib_resources.files("jaxbert.data") / "labelled" / f"{name}_{split}.jsonl.xz"
  with path.open("rb") as raw, lzma.open(raw, "rt", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return Split(tuple(r["text"] for r in rows), None,
               np.array([r["label"] for r in rows], np.int32))


def embedded(name: str) -> Task:
  classes, metrics = EMBEDDED[name]
  return Task(name, _embedded_split(name, "train"), {"dev": _embedded_split(name, "dev")},
              classes, metrics, headline=(metrics[0],))


def load(spec: str, cfg=None) -> list[Task]:
  """The tasks a `finetune.task` spec names; `cfg` is the `finetune` config (columns, dirs)."""
  from jaxbert.data import glue, userfile  # sources that need the record above

  if cfg is None:
    from jaxbert import config
    cfg = config.default().finetune
  kind, _, rest = spec.partition(":")
  if spec in EMBEDDED:
    return [embedded(spec)]
  if kind == "glue" and rest:
    directory, _, names = rest.partition(":")
    return glue.from_directory(directory, [n for n in names.split(",") if n])
  if kind == "tfds" and rest:
    return glue.from_tfds([n for n in rest.split(",") if n], cfg.tfds_data_dir)
  if kind == "file" and rest:
    train, _, dev = rest.partition(",")
    return [userfile.load(train, dev or None, cfg)]
  raise ConfigError(
      f"finetune.task={spec!r} is not a task; use one of {', '.join(map(repr, EMBEDDED))}, "
      "'glue:DIR[:TASK,...]', 'tfds:glue/sst2[,glue/...]' or 'file:PATH[,DEV_PATH]'")
