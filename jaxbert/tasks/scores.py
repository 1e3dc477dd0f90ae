"""Dev-set scores of fine-tuned models, as GLUE defines them: plain numpy, no model or file.

Each takes (predictions, labels) and returns a float. Degenerate inputs give the score's
conventional value (0 for a Matthews or F1 with an empty denominator, 0 for a correlation of a
constant) rather than NaN, so a collapsed fine-tune reads as "no skill", not as a crash.
"""

import numpy as np


def accuracy(predictions, labels) -> float:
  return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def _confusion(predictions, labels):
  p, y = np.asarray(predictions) == 1, np.asarray(labels) == 1
  return (int(np.sum(p & y)), int(np.sum(p & ~y)), int(np.sum(~p & y)), int(np.sum(~p & ~y)))


def f1(predictions, labels) -> float:
  """F1 of the positive class (label 1), as GLUE scores MRPC and QQP."""
  tp, fp, fn, _ = _confusion(predictions, labels)
  return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews(predictions, labels) -> float:
  """Matthews correlation of binary predictions (CoLA's score), in [-1, 1]."""
  tp, fp, fn, tn = _confusion(predictions, labels)
  denominator = np.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def pearson(predictions, labels) -> float:
  x = np.asarray(predictions, np.float64)
  y = np.asarray(labels, np.float64)
  x, y = x - x.mean(), y - y.mean()
  denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
  return float(np.sum(x * y) / denominator) if denominator else 0.0


def ranks(values) -> np.ndarray:
  """1-based ranks; tied values share the mean of the ranks they span."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  # Runs of equal values: each run's members get the mean of its first and last rank.
  starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
  ends = np.r_[starts[1:], len(values)]
  out = np.empty(len(values))
  for s, e in zip(starts, ends):
    out[order[s:e]] = (s + 1 + e) / 2
  return out


def spearman(predictions, labels) -> float:
  """Spearman's rho: Pearson correlation of the (tie-averaged) ranks."""
  return pearson(ranks(predictions), ranks(labels))


SCORES = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson,
          "spearman": spearman}


def confusion(predictions, labels, num_classes: int) -> np.ndarray:
  """int [true class, predicted class] counts."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
  return out


def per_class(predictions, labels, num_classes: int) -> list[dict]:
  """Precision, recall, F1 and support of each class, one-against-the-rest (0 where undefined)."""
  matrix = confusion(predictions, labels, num_classes)
  out = []
  for c in range(num_classes):
    tp, predicted, actual = matrix[c, c], matrix[:, c].sum(), matrix[c].sum()
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out.append(dict(precision=float(precision), recall=float(recall), f1=float(f),
                    support=int(actual)))
  return out
