"""GLUE tasks from a local directory in the standard layout, or from prepared TFDS datasets.

The directory is what the usual GLUE download script writes: CoLA/ (no header), SST-2/, MRPC/,
STS-B/, QQP/, MNLI/ (dev_matched.tsv, dev_mismatched.tsv), QNLI/, RTE/, each with train.tsv and
dev tsv files; WNLI is left out, as in the cramming paper. Files are tab-separated without
quoting (QUOTE_NONE): GLUE texts contain unbalanced quote characters.
"""
import csv
import dataclasses
import os
import sys

import numpy as np

from jaxbert.config import ConfigError
from .. import readers
from .records import Split, Task, column


@dataclasses.dataclass(frozen=True)
class Spec:
  directory: str  # in a GLUE directory
  tfds: str  # TFDS config name under glue/
  a: str | int  # header name of the first text, or its column index in a file without header
  b: str | int | None  # second text (pairs)
  label: str | int
  classes: tuple | None  # label strings in index order; None: a float score (regression)
  metrics: tuple
  headline: tuple  # metrics that stand for the task in the GLUE average
  dev: tuple = (("dev", "dev.tsv", "validation"),)  # (split, file, TFDS split)
  tfds_fields: tuple = ("sentence", None)  # TFDS feature names of text a and b


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
# The GLUE average counts MNLI matched and mismatched as two entries, and one number (GLUE's
# first-listed metric: F1, Pearson) for each two-metric task. This is how the cramming paper's
# GLUE column averages its per-task columns, MNLI m and mm each being one of the nine.
TASKS = {
    "cola": Spec("CoLA", "cola", 3, None, 1, BINARY, ("matthews",), ("matthews",)),
    "sst2": Spec("SST-2", "sst2", "sentence", None, "label", BINARY, ("accuracy",),
                 ("accuracy",)),
    "mrpc": Spec("MRPC", "mrpc", "#1 String", "#2 String", "Quality", BINARY,
                 ("f1", "accuracy"), ("f1",), tfds_fields=("sentence1", "sentence2")),
    "stsb": Spec("STS-B", "stsb", "sentence1", "sentence2", "score", None,
                 ("pearson", "spearman"), ("pearson",), tfds_fields=("sentence1", "sentence2")),
    "qqp": Spec("QQP", "qqp", "question1", "question2", "is_duplicate", BINARY,
                ("f1", "accuracy"), ("f1",), tfds_fields=("question1", "question2")),
    "mnli": Spec("MNLI", "mnli", "sentence1", "sentence2", "gold_label",
                 ("entailment", "neutral", "contradiction"), ("accuracy",), ("accuracy",),
                 dev=(("matched", "dev_matched.tsv", "validation_matched"),
                      ("mismatched", "dev_mismatched.tsv", "validation_mismatched")),
                 tfds_fields=("premise", "hypothesis")),
    "qnli": Spec("QNLI", "qnli", "question", "sentence", "label", ENTAILMENT, ("accuracy",),
                 ("accuracy",), tfds_fields=("question", "sentence")),
    "rte": Spec("RTE", "rte", "sentence1", "sentence2", "label", ENTAILMENT, ("accuracy",),
                ("accuracy",), tfds_fields=("sentence1", "sentence2")),
}
BY_DIRECTORY = {s.directory.lower(): name for name, s in TASKS.items()}


def _task_name(name: str) -> str:
  key = name.lower().replace("-", "")
  key = {"sst": "sst2", "sts": "stsb"}.get(key, key)
  if key not in TASKS:
    raise ConfigError(f"GLUE task {name!r} is not one of {', '.join(TASKS)} (WNLI is left out)")
  return key


def _labels(values, spec: Spec, where: list[str]) -> np.ndarray:
  if spec.classes is None:
    return np.array([float(v) for v in values], np.float32)
  index = {c: i for i, c in enumerate(spec.classes)}
  bad = [(w, v) for w, v in zip(where, values) if v not in index]
  if bad:
    raise ConfigError(f"{bad[0][0]}: label {bad[0][1]!r} is not one of {spec.classes}")
  return np.array([index[v] for v in values], np.int32)


def read_tsv(path: str, spec: Spec) -> tuple[Split, int]:
  """(split, number of short rows skipped) of one GLUE file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing: a GLUE {spec.directory} directory holds "
                            f"train.tsv and {', '.join(f for _, f, _ in spec.dev)}")
  csv.field_size_limit(sys.maxsize)
  # utf-8-sig: MRPC's files start with a byte-order mark, which would hide the first column name
  with open(path, encoding="utf-8-sig", newline="") as f:
    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    rows = list(reader)
  first = 1
  cols = (spec.a, spec.b, spec.label)
  if isinstance(spec.a, str):  # a header names the columns
    header, first = rows[0] if rows else [], 2
    missing = [c for c in cols if c is not None and c not in header]
    if missing:
      raise ConfigError(f"{path}: header has no column {missing[0]!r} (it has {header})")
    cols = tuple(None if c is None else header.index(c) for c in cols)
    rows = rows[1:]
  width = max(c for c in cols if c is not None) + 1
  # QQP's train.tsv has a few broken lines (a question split over two rows); GLUE readers
  # have always skipped them.
  kept = [(i, r) for i, r in enumerate(rows, first) if len(r) >= width]
  a, b, label = cols
  where = [f"{path}:{i}" for i, _ in kept]
  split = Split(tuple(r[a] for _, r in kept),
                None if b is None else tuple(r[b] for _, r in kept),
                _labels([r[label].strip() for _, r in kept], spec, where))
  return split, len(rows) - len(kept)


def _task(name: str, train: Split, dev: dict) -> Task:
  spec = TASKS[name]
  headline = tuple(column(split, m) for split in dev for m in spec.headline)
  return Task(name, train, dev, spec.classes, spec.metrics, headline)


def from_directory(directory: str, names: list[str]) -> list[Task]:
  """The named tasks (all that are present when none is named), in the order of TASKS."""
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"GLUE directory {directory} does not exist")
  if names:
    wanted = [_task_name(n) for n in names]
  else:
    present = {d.lower() for d in os.listdir(directory)}
    wanted = [n for n, s in TASKS.items() if s.directory.lower() in present]
    if not wanted:
      raise FileNotFoundError(
          f"{directory} holds none of the GLUE task directories "
          f"({', '.join(s.directory for s in TASKS.values())})")
  tasks = []
  for name in [n for n in TASKS if n in wanted]:
    spec = TASKS[name]
    base = os.path.join(directory, spec.directory)
    train, skipped = read_tsv(os.path.join(base, "train.tsv"), spec)
    dev = {}
    for split, filename, _ in spec.dev:
      dev[split], more = read_tsv(os.path.join(base, filename), spec)
      skipped += more
    if skipped:
      print(f"[glue] {spec.directory}: skipped {skipped} rows with missing columns", flush=True)
    tasks.append(_task(name, train, dev))
  return tasks


def from_tfds(names: list[str], data_dir: str) -> list[Task]:
  """GLUE configs ("glue/sst2", or "glue" for all 8) read with tfds.data_source.

  Only a dataset already prepared in the data dir is read: preparing GLUE needs the network and
  minutes, so a missing one is an error at once, saying what to do, never a download attempt.
  """
  data_dir = readers.tfds_data_dir(data_dir)
  wanted = []
  for n in names:
    dataset, _, config = n.partition("/")
    if dataset != "glue":
      raise ConfigError(f"finetune.task=tfds:{n}: only TFDS glue/<task> datasets are read")
    wanted += list(TASKS) if not config else [_task_name(config)]
  tasks = []
  for name in [n for n in TASKS if n in wanted]:
    spec = TASKS[name]
    prepared = os.path.join(data_dir, "glue", spec.tfds)
    if not os.path.isdir(prepared) or not any(
        os.path.isfile(os.path.join(prepared, v, "dataset_info.json"))
        for v in os.listdir(prepared)):
      raise FileNotFoundError(
          f"TFDS glue/{spec.tfds} is not prepared in {data_dir} (finetune.tfds_data_dir or "
          f"$TFDS_DATA_DIR). Prepare it where the network is reachable with `tfds build "
          f"glue/{spec.tfds} --data_dir={data_dir} --file_format=array_record`, or use a GLUE "
          f"directory: finetune.task=glue:DIR")
    import tensorflow_datasets as tfds  # slow to import; only when it is used

    source = tfds.data_source(f"glue/{spec.tfds}", data_dir=data_dir, download=False)

    def split_of(tfds_split):
      rows = list(source[tfds_split])
      text = lambda r, k: r[k].decode("utf-8") if isinstance(r[k], bytes) else str(r[k])
      a, b = spec.tfds_fields
      labels = [r["label"] for r in rows]
      return Split(tuple(text(r, a) for r in rows),
                   None if b is None else tuple(text(r, b) for r in rows),
                   np.array(labels, np.float32 if spec.classes is None else np.int32))

    tasks.append(_task(name, split_of("train"),
                       {split: split_of(t) for split, _, t in spec.dev}))
  return tasks
