"""The labelled sets shipped in the package: files {name}_{train,dev}.jsonl.xz beside this one.

Sources, licences and the scripts that rebuild them byte for byte: SOURCES.md.
"""
import functools
import json
import lzma

import importlib_resources
import numpy as np

from .records import Split, Task

# Embedded tasks: name -> (class names, metrics); files labelled/{name}_{train,dev}.jsonl.xz
EMBEDDED = {
    "sentiment": (("negative", "positive"), ("accuracy",)),
    "spam": (("ham", "spam"), ("accuracy", "f1")),  # a third is spam: F1 shows missed spam
}

# Texts in no split of each shipped task, written for showing a fresh classifier at work.
EXAMPLES = {
    "sentiment": ("A tender, funny film that earns every minute of its ending.",
                  "Two hours of noise, and not one character worth caring about."),
    "spam": ("Re: minutes of tuesday's meeting, and the draft for friday",
             "WIN a FREE cruise!!! claim your prize now, limited offer"),
}


@functools.cache
def _embedded_split(name: str, split: str) -> Split:
  path = importlib_resources.files("jaxbert.data.labelled") / f"{name}_{split}.jsonl.xz"
  with path.open("rb") as raw, lzma.open(raw, "rt", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return Split(tuple(r["text"] for r in rows), None,
               np.array([r["label"] for r in rows], np.int32))


def embedded(name: str) -> Task:
  classes, metrics = EMBEDDED[name]
  return Task(name, _embedded_split(name, "train"), {"dev": _embedded_split(name, "dev")},
              classes, metrics, headline=(metrics[0],))
