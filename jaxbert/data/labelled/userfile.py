"""A user's own labelled data: a CSV, TSV or JSONL file, or a train/dev pair of them.

CSV and TSV files start with a header naming the columns; TSV is read without quoting (a text may
hold a lone quote), CSV with the usual double-quote rules. JSONL has one object per line.
Columns come from `finetune.text_column`, `finetune.text_b_column` ("" = single texts) and
`finetune.label_column`. Labels that are all numbers, one of them written with a decimal point
or exponent, make a regression task; anything else is a class name (sorted: "0" < "1", or
"neg" < "pos"). With no dev file, a fixed `finetune.dev_fraction` of the rows is held out.
"""
import csv
import json
import os
import re
import sys

import numpy as np

from jaxbert.config import ConfigError
from .records import Split, Task

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)$")


def _rows(path: str):
  """(line number, {column: value}) of every record, and the columns the file has."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise ConfigError(f"{path}: unknown file type {ext!r}; use .csv, .tsv or .jsonl")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist (finetune.task=file:PATH[,DEV_PATH])")
  try:
    return _parse(path, FORMATS[ext])
  except UnicodeDecodeError as e:
    raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from e


def json_object(path: str, number: int, line: str) -> dict:
  """The object on line `number` of a JSONL file; anything else names the file and line."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path}:{number}: not a JSON object ({e.msg})") from None
  if not isinstance(record, dict):
    raise ConfigError(f"{path}:{number}: not a JSON object")
  return record


def _parse(path: str, kind: str):
  # utf-8-sig: a byte-order mark (spreadsheet exports) would hide the first column name
  with open(path, encoding="utf-8-sig", newline="") as f:
    if kind == "jsonl":
      out = []
      for i, line in enumerate(f, 1):
        if line.strip():
          out.append((i, json_object(path, i, line)))
      return out, sorted({k for _, r in out for k in r})
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",",
                            quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
    out = []
    for record in reader:
      if any(v not in (None, "") for v in record.values()):  # blank lines are not rows
        out.append((reader.line_num, record))
    return out, list(reader.fieldnames or [])


def _read(path: str, cfg) -> list[tuple]:
  """(where, text_a, text_b, raw label) per row; a missing text or label names the line."""
  rows, columns = _rows(path)
  wanted = [c for c in (cfg.text_column, cfg.text_b_column, cfg.label_column) if c]
  missing = [c for c in wanted if c not in columns]
  if missing:
    key = {cfg.text_column: "text_column", cfg.text_b_column: "text_b_column",
           cfg.label_column: "label_column"}[missing[0]]
    raise ConfigError(f"{path} has no column {missing[0]!r} (finetune.{key}); its columns are "
                      f"{columns}")
  if not rows:
    raise ConfigError(f"{path} holds no rows")
  out = []
  for line, record in rows:
    values = []
    for c in wanted:
      v = record.get(c)
      if v is None or (isinstance(v, str) and not v.strip()):
        raise ConfigError(f"{path}:{line}: the {c!r} column is missing or empty")
      values.append(v if c == cfg.label_column else str(v))
    a = values[0]
    b = values[1] if cfg.text_b_column else None
    out.append((f"{path}:{line}", a, b, values[-1]))
  return out


def _is_float(label) -> bool:
  if isinstance(label, bool):
    return False
  if isinstance(label, float):
    return True
  return isinstance(label, str) and bool(_FLOAT.match(label.strip()))


def _is_number(label) -> bool:
  if isinstance(label, (int, float)) and not isinstance(label, bool):
    return True
  try:
    float(str(label))
    return True
  except ValueError:
    return False


def load(train_path: str, dev_path: str | None, cfg) -> Task:
  train = _read(train_path, cfg)
  dev = _read(dev_path, cfg) if dev_path else None
  everything = train + (dev or [])
  regression = (all(_is_number(r[3]) for r in everything)
                and any(_is_float(r[3]) for r in everything))
  if regression:
    classes = None
    convert = lambda rows: np.array([float(r[3]) for r in rows], np.float32)
  else:
    names = sorted({str(r[3]).strip() for r in train},
                   key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0, s))
    if len(names) < 2:
      raise ConfigError(f"{train_path}: every row has the label {names[0]!r}; a classifier "
                        "needs two classes or more")
    index = {c: i for i, c in enumerate(names)}
    for where, _, _, label in dev or []:
      if str(label).strip() not in index:
        raise ConfigError(f"{where}: label {label!r} does not occur in {train_path} "
                          f"(its labels: {names})")
    classes = tuple(names)
    convert = lambda rows: np.array([index[str(r[3]).strip()] for r in rows], np.int32)

  def split(rows):
    return Split(tuple(r[1] for r in rows),
                 tuple(r[2] for r in rows) if cfg.text_b_column else None, convert(rows))

  train_split = split(train)
  if dev is None:
    if not 0 < cfg.dev_fraction < 1:
      raise ConfigError(f"finetune.dev_fraction={cfg.dev_fraction} must be in (0, 1) when "
                        "no dev file is given")
    # A fixed permutation (seed 0), so the same file always splits the same way.
    order = np.random.default_rng(0).permutation(len(train))
    n_dev = max(1, round(cfg.dev_fraction * len(train)))
    dev_split = train_split.subset(np.sort(order[:n_dev]))
    train_split = train_split.subset(np.sort(order[n_dev:]))
  else:
    dev_split = split(dev)
  metrics = ("pearson", "spearman") if regression else (
      ("accuracy", "f1") if len(classes) == 2 else ("accuracy",))
  name = os.path.splitext(os.path.basename(train_path))[0]
  return Task(name, train_split, {"dev": dev_split}, classes, metrics, headline=(metrics[0],))
