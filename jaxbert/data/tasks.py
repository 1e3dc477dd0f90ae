"""Labelled tasks for fine-tuning, shipped in the package (`labelled/`, sources in SOURCES.md)."""
import functools
import json
import lzma

import importlib_resources

from jaxbert.config import ConfigError

# task -> (file stem, number of labels, metric)
TASKS = {"sentiment": ("sentiment", 2, "accuracy")}


@functools.cache
def _split(stem: str, split: str) -> tuple:
  path = importlib_resources.files("jaxbert.data") / "labelled" / f"{stem}_{split}.jsonl.xz"
  with path.open("rb") as raw, lzma.open(raw, "rt", encoding="utf-8") as f:
    return tuple((r["text"], r["label"]) for r in map(json.loads, f))


def load(task: str) -> dict:
  """{"train": [(text, label)], "dev": [...], "num_labels": int, "metric": str}."""
  if task not in TASKS:
    raise ConfigError(f"task={task!r} is not a labelled task; use one of {', '.join(TASKS)}")
  stem, num_labels, metric = TASKS[task]
  return dict(train=list(_split(stem, "train")), dev=list(_split(stem, "dev")),
              num_labels=num_labels, metric=metric)
