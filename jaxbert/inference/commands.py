"""--mode=predict, embed and evaluate: a saved classifier (or a pretrained encoder) on a file.

  python run.py --mode=predict --workdir=W [--classifier=NAME] --input=FILE [--output=OUT.jsonl]
  python run.py --mode=embed --workdir=W [--classifier=NAME] --input=FILE --output=X.npy
  python run.py --mode=evaluate --workdir=W --classifier=NAME --input=LABELLED.csv

Inputs stream in chunks (inputs.py), so memory stays flat whatever their size; outputs are
written under a temporary name and renamed when complete, so a failed run leaves none. A blank
text gets a null in its place (predict: the line null; embed: a row of NaN), so output row N
answers input row N.
"""
import contextlib
import json
import os
import sys
import tempfile

import numpy as np

from jaxbert import files, progress
from jaxbert.config import ConfigError
from jaxbert.tasks import saved, scores

from . import inputs, loaded
from .loaded import CHUNK, Classifier, Encoder


def _check_output(path: str, overwrite: bool) -> str:
  """The directory OUT goes in, once OUT is known to be writable there: checked before any work,
  so that a bad --output costs no model load and names what the user gave, not a temporary file.
  """
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"--output={path}: the directory {directory} does not exist; create "
                            "it, or choose another --output")
  if os.path.isdir(path):
    raise ConfigError(f"--output={path} is a directory; name a file in it")
  if os.path.exists(path) and not overwrite:
    raise ConfigError(f"{path} exists; remove it, choose another --output, or pass --overwrite")
  if not os.access(directory, os.W_OK | os.X_OK):
    raise PermissionError(f"--output={path}: the directory {directory} is not writable; choose "
                          "another --output")
  return directory


@contextlib.contextmanager
def _output(path: str | None, overwrite: bool, binary: bool = False):
  """A file object for OUT, written aside and renamed on success; stdout for None or "-"."""
  if path in (None, "-"):
    if binary:
      raise ConfigError("--output=FILE is needed: the embeddings are a .npy file")
    yield sys.stdout
    sys.stdout.flush()
    return
  _check_output(path, overwrite)
  with files.opened(path, binary) as f:
    yield f


def _report_cut(cut: int, total: int, max_len: int):
  if cut:
    print(f"[predict] {cut} of {total} texts were longer than the classifier's max_len={max_len} "
          "tokens and were cut to fit", file=sys.stderr, flush=True)


def _report_blank(what: str, blank: int, total: int, null: str):
  if blank:
    print(f"[{what}] {blank} of {total} texts were blank: {null} in their place", file=sys.stderr,
          flush=True)


def _chunks(rows, what: str):
  """Chunks of rows, with a progress count on stderr for a person watching a long input."""
  with progress.Progress(stream=sys.stderr, desc=what, unit="texts", tag="[jaxbert] ") as bar:
    for chunk in inputs.chunks(rows, CHUNK):
      yield chunk
      bar.advance(len(chunk))


def predict(workdir: str, name: str | None, input_path: str, output: str | None,
            text_column: str | None = None, input_format: str = "", overwrite: bool = False):
  """One JSON object per input row, in input order, to OUT (stdout by default); null for a
  blank text."""
  if output not in (None, "-"):
    _check_output(output, overwrite)
  return write_predictions(Classifier.load(workdir, name), input_path, output, text_column,
                           input_format, overwrite)


def write_predictions(clf: Classifier, input_path: str, output: str | None,
                      text_column: str | None = None, input_format: str = "",
                      overwrite: bool = False) -> int:
  """predict() with a loaded classifier: what a process that keeps it loaded runs per file."""
  rows = inputs.rows(input_path, text_column or clf.meta["text_column"],
                     clf.meta["text_b_column"], kind=input_format)
  total = cut = blank = 0
  with _output(output, overwrite) as out:
    for chunk in _chunks(rows, "predict"):
      answers = clf.predict([r.text_a for r in chunk],
                            [r.text_b for r in chunk] if clf.pair else None)
      out.write("".join(json.dumps(a) + "\n" for a in answers))  # None is the line null
      total, cut, blank = total + len(chunk), cut + clf.last_cut, blank + clf.last_blank
  _report_cut(cut, total, clf.max_len)
  _report_blank("predict", blank, total, "null")
  if output not in (None, "-"):
    print(f"predicted {total} texts with {clf.path}: {output}", file=sys.stderr, flush=True)
  return total


def embed(workdir: str, name: str | None, input_path: str, output: str | None,
          text_column: str | None = None, input_format: str = "", overwrite: bool = False,
          step: int | None = None):
  """float32 [rows, hidden] to OUT.npy: the classifier's pooled vectors, or the pretrained
  encoder's mean-pooled outputs when no classifier is named; a row of NaN for a blank text."""
  if output in (None, "-") or not output.endswith(".npy"):
    raise ConfigError(f"--output={output}: --mode=embed writes a .npy file; name one (X.npy)")
  directory = _check_output(output, overwrite)
  model = Classifier.load(workdir, name) if name else Encoder.load(workdir, step)
  meta = model.meta if name else {"text_column": "text", "text_b_column": ""}
  rows = inputs.rows(input_path, text_column or meta["text_column"], meta["text_b_column"],
                     kind=input_format)
  hidden, total, cut, blank = model.model.hidden_size, 0, 0, 0
  # The row count is known only at the end: float32 rows go to a raw file, then into the .npy.
  with tempfile.TemporaryFile(dir=directory) as raw:
    for chunk in _chunks(rows, "embed"):
      vectors = model.embed([r.text_a for r in chunk],
                            [r.text_b for r in chunk] if meta["text_b_column"] else None)
      raw.write(np.ascontiguousarray(vectors, np.float32).tobytes())
      total, cut, blank = total + len(chunk), cut + model.last_cut, blank + model.last_blank
    with _output(output, overwrite, binary=True) as out:
      np.lib.format.write_array_header_1_0(
          out, {"descr": "<f4", "fortran_order": False, "shape": (total, hidden)})
      raw.seek(0)
      while block := raw.read(1 << 24):
        out.write(block)
  _report_cut(cut, total, model.max_len)
  _report_blank("embed", blank, total, "a row of NaN")
  print(f"embedded {total} texts: {output} float32 [{total}, {hidden}]", file=sys.stderr,
        flush=True)
  return total


def evaluate(workdir: str, name: str | None, input_path: str, text_column: str | None = None,
             input_format: str = "") -> dict:
  """The classifier's metrics on a labelled file, per-class scores and the confusion matrix;
  printed, and written to CLASSIFIER/evaluation-<file name>.json."""
  clf = Classifier.load(workdir, name)
  label_column = clf.meta["finetune"]["label_column"]
  rows = inputs.rows(input_path, text_column or clf.meta["text_column"],
                     clf.meta["text_b_column"], label_column, kind=input_format)
  where = "stdin" if input_path == "-" else input_path
  predicted, truth, cut = [], [], 0
  index = {c: i for i, c in enumerate(clf.labels or [])}
  for chunk in _chunks(_texted(rows, where), "evaluate"):
    truth += [_label(clf, index, r.label, f"{where}:{r.line}") for r in chunk]
    outputs = clf.outputs([r.text_a for r in chunk],
                          [r.text_b for r in chunk] if clf.pair else None)
    predicted += list(outputs if clf.regression else np.argmax(outputs, axis=-1))
    cut += clf.last_cut
  predicted, truth = np.asarray(predicted), np.asarray(truth)
  result = dict(classifier=clf.path, input=where, rows=len(truth), texts_cut=cut,
                metrics={m: scores.SCORES[m](predicted, truth) for m in clf.meta["metrics"]})
  if not clf.regression:
    k = len(clf.labels)
    result["per_class"] = dict(zip(clf.labels, scores.per_class(predicted, truth, k)))
    result["confusion"] = dict(labels=clf.labels,
                               counts=scores.confusion(predicted, truth, k).tolist())
  stem = "stdin" if input_path == "-" else os.path.splitext(os.path.basename(input_path))[0]
  path = os.path.join(clf.path, f"evaluation-{stem}.json")
  with _output(path, overwrite=True) as out:  # ours, not the user's: a rerun refreshes it
    json.dump(result, out, indent=2)
  print(format_evaluation(result), flush=True)
  print(f"written to {path}", flush=True)
  return result


def _texted(rows, where: str):
  """The labelled rows, less empty ones (a spreadsheet's trailing ,,); a blank text with a label
  is refused: it has no prediction to score, and leaving it out would shift the score unseen."""
  for r in rows:
    if not loaded.blanks([r.text_a], None if r.text_b is None else [r.text_b])[0]:
      yield r
    elif r.label is not None and str(r.label).strip():
      raise ConfigError(f"{where}:{r.line}: the text is blank but labelled {r.label!r}; give it "
                        "its text or remove the row")


def _label(clf, index: dict, value, where: str):
  if clf.regression:
    try:
      return float(value)
    except (TypeError, ValueError):
      raise ConfigError(f"{where}: label {value!r} is not a number (a regression model)") from None
  key = str(value).strip()
  if key not in index:
    raise ConfigError(f"{where}: label {value!r} is not one of the classifier's labels "
                      f"{clf.labels}")
  return index[key]


def format_evaluation(result: dict) -> str:
  lines = [f"{result['input']}: {result['rows']} rows, " +
           ", ".join(f"{m} {v:.4f}" for m, v in result["metrics"].items())]
  if "per_class" in result:
    labels = result["confusion"]["labels"]
    width = max(8, *(len(c) for c in labels))
    lines += ["", f"| {'class':<{width}} | precision | recall |     F1 | support |",
              f"| {'-' * width} | --------: | -----: | -----: | ------: |"]
    lines += [f"| {c:<{width}} | {s['precision']:9.4f} | {s['recall']:6.4f} | {s['f1']:6.4f} | "
              f"{s['support']:7d} |" for c, s in result["per_class"].items()]
    lines += ["", "confusion (rows: true class, columns: predicted)",
              f"| {'':<{width}} | " + " | ".join(f"{c:>{width}}" for c in labels) + " |",
              f"| {'-' * width} | " + " | ".join("-" * (width - 1) + ":" for _ in labels) + " |"]
    lines += [f"| {c:<{width}} | " + " | ".join(f"{n:>{width}d}" for n in row) + " |"
              for c, row in zip(labels, result["confusion"]["counts"])]
  if result["texts_cut"]:
    lines.append(f"({result['texts_cut']} texts were cut to the classifier's max_len)")
  return "\n".join(lines)


def show_use(workdir: str, classifiers: dict):
  """After fine-tuning: where each classifier is, the command that uses it, and its answers on
  a few texts it never saw (for a shipped task)."""
  from jaxbert.data.labelled import EXAMPLES

  for task, path in classifiers.items():
    name = os.path.basename(path)
    only = len(classifiers) == 1 and len(saved.names(workdir)) == 1
    pick = "" if only else f" --classifier={name}"
    print(f"classifier: {path}\n  python run.py --mode=predict --workdir={workdir}{pick} "
          "--input=-     # classify stdin's lines", flush=True)
    if task in EXAMPLES:
      clf = Classifier.load(path)
      for text, a in zip(EXAMPLES[task], clf.predict(list(EXAMPLES[task]))):
        print(f"  {text!r} -> {a['label']} ({a['probabilities'][a['label']]:.2f})", flush=True)
