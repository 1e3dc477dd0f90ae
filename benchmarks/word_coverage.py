"""How often the pretraining corpus shows the words a labelled task turns on.

  python benchmarks/word_coverage.py [--task=sentiment] [--top=500] [--tokens_read=33e6] \
      [--sources=embedded,jsonl:more.jsonl.xz]

Pretraining can only teach what a word means from the contexts the corpus gives it. The words
that decide a task's labels are found from the task's own training texts: the TOP words seen at
least MIN_COUNT times there with the largest smoothed log-odds between the labels (binary tasks).
For them, and for every word of the dev texts, it prints one JSON object: how many word tokens
the training documents of --sources (data.sources' syntax; the shipped corpus by default) hold,
and what share of those words they show 0 times, fewer than 10, fewer than 100 times; with
--tokens_read, also about how many times a pretraining run that reads that many corpus tokens
(the run's "tokens seen") meets the median label word. Words are lowercased runs of letters and
apostrophes, not WordPiece tokens, so the figures hold whatever the vocabulary.
"""

import collections
import json
import math
import os
import re
import sys

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxbert.data import sources as sources_lib  # noqa: E402
from jaxbert.data import labelled as tasks  # noqa: E402

flags.DEFINE_string("task", "sentiment", "a labelled task (tasks.load's spec) with two classes")
flags.DEFINE_string("sources", "embedded", "the pretraining documents, as data.sources")
flags.DEFINE_integer("top", 500, "how many label-deciding words to measure")
flags.DEFINE_integer("min_count", 10, "a label word is seen at least this often in the task")
flags.DEFINE_float("tokens_read", 0, "a pretraining run's tokens seen, for the exposure column")
FLAGS = flags.FLAGS

WORD = re.compile(r"[a-z][a-z']*")


def words(text: str) -> list[str]:
  return WORD.findall(text.lower())


def label_words(texts, labels, top: int, min_count: int) -> list[str]:
  """The TOP words, seen MIN_COUNT times or more, whose add-one log-odds of label 1 against
  label 0 is largest in size."""
  counts = [collections.Counter(), collections.Counter()]
  for text, label in zip(texts, labels):
    counts[int(label)].update(words(text))
  totals = [sum(c.values()) for c in counts]
  vocab = set(counts[0]) | set(counts[1])
  score = {w: abs(math.log((counts[1][w] + 1) / (totals[1] + len(vocab)))
                  - math.log((counts[0][w] + 1) / (totals[0] + len(vocab))))
           for w in vocab if counts[0][w] + counts[1][w] >= min_count}
  return sorted(score, key=lambda w: (-score[w], w))[:top]


def shares(counts: np.ndarray) -> dict:
  return {"corpus_count_0": float(np.mean(counts == 0)),
          "corpus_count_under_10": float(np.mean(counts < 10)),
          "corpus_count_under_100": float(np.mean(counts < 100)),
          "median_corpus_count": float(np.median(counts))}


def main(_):
  task, = tasks.load(FLAGS.task)
  if task.regression or task.num_outputs != 2:
    raise SystemExit(f"--task={FLAGS.task}: the label words need a task of two classes")
  corpus_counts = collections.Counter()
  for spec in sources_lib.as_list(FLAGS.sources):
    for doc in sources_lib.parse(spec).documents("train", None):
      corpus_counts.update(words(doc))
  corpus_tokens = sum(corpus_counts.values())
  chosen = label_words(task.train.text_a, task.train.labels, FLAGS.top, FLAGS.min_count)
  label = np.array([corpus_counts[w] for w in chosen])
  dev_tokens = np.array([corpus_counts[w] for s in task.dev.values() for t in s.text_a
                         for w in words(t)])
  out = {"task": task.name, "sources": FLAGS.sources, "corpus_word_tokens": corpus_tokens,
         "corpus_word_types": len(corpus_counts),
         "label_words": {"n": len(chosen), **shares(label),
                         "examples_absent": [w for w in chosen if not corpus_counts[w]][:20]},
         "dev_word_tokens": {"n": int(dev_tokens.size), **shares(dev_tokens)}}
  if FLAGS.tokens_read:
    # A run reads the corpus tokens_read / (corpus size in WordPiece tokens) times; word tokens
    # stand in for WordPiece ones here (a WordPiece store holds somewhat more), so it is rough.
    out["label_words"]["median_meetings_in_run"] = float(
        np.median(label) * FLAGS.tokens_read / corpus_tokens)
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  app.run(main)
