"""Texts to classify or embed, streamed from a file or stdin, in input order.

  .txt          one text a line (a blank line is a blank text, so output line N answers input
                line N)
  .csv / .tsv   a header, then rows; the text in `text_column` (and `text_b_column` for pairs);
                an empty line is no row, an empty field a blank text
  .jsonl        one object a line, the same keys (a null text is a blank one)
  -             stdin, read as .txt unless `kind` says otherwise

Rows come in chunks, so a file of any size is read in flat memory. Bad input raises ConfigError
naming the file and the line, or FileNotFoundError. A blank text is a row like any other: its
answer is a null in its place (loaded.blanks), never a refusal, so outputs stay aligned.
"""
import csv
import os
import sys
import typing

from jaxbert.config import ConfigError
from jaxbert.data.labelled import userfile

KINDS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


class Row(typing.NamedTuple):
  line: int  # where it starts in the input, 1-based
  text_a: str
  text_b: str | None
  label: object  # the label column's value, when one was asked for, else None


def kind_of(path: str, kind: str = "") -> str:
  if kind:
    if kind not in KINDS.values():
      raise ConfigError(f"--input_format={kind!r}: use one of {sorted(set(KINDS.values()))}")
    return kind
  if path == "-":
    return "txt"
  ext = os.path.splitext(path)[1].lower()
  if ext not in KINDS:
    raise ConfigError(f"{path}: unknown file type {ext!r}; use .txt (one text a line), .csv, "
                      ".tsv or .jsonl")
  return KINDS[ext]


def _lines(path: str, binary) -> typing.Iterator[str]:
  """Decoded lines; a byte that is not UTF-8 names the line it is on."""
  for number, raw in enumerate(binary, 1):
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ConfigError(f"{path}:{number}: not UTF-8 text (byte {e.start + 1} of the line); "
                        "save the file as UTF-8") from None
    if number == 1:
      line = line.removeprefix("\ufeff")  # a byte-order mark, as spreadsheets write
    yield line


def rows(path: str, text_column: str = "text", text_b_column: str = "",
         label_column: str = "", kind: str = "") -> typing.Iterator[Row]:
  """Every row of the input, in order; `label_column` also reads labels (for evaluation)."""
  kind = kind_of(path, kind)
  name = "stdin" if path == "-" else path
  if path == "-":
    binary = sys.stdin.buffer
  else:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} does not exist" + (" (it is a directory)"
                                                          if os.path.isdir(path) else ""))
    binary = open(path, "rb")
  count = 0
  try:
    lines = _lines(name, binary)
    if kind == "txt":
      if text_b_column or label_column:
        raise ConfigError(f"{name}: a .txt input holds one text a line; "
                          + ("a pair classifier needs a .csv, .tsv or .jsonl file with both texts"
                             if text_b_column else "labels need a .csv, .tsv or .jsonl file"))
      for count, line in enumerate(lines, 1):
        yield Row(count, line.rstrip("\r\n"), None, None)
    elif kind == "jsonl":
      for number, line in enumerate(lines, 1):
        if line.strip():
          count += 1
          yield _json_row(name, number, line, text_column, text_b_column, label_column)
    else:
      for count, row in enumerate(_table_rows(name, lines, kind, text_column, text_b_column,
                                              label_column), 1):
        yield row
  finally:
    if binary is not sys.stdin.buffer:
      binary.close()
  if count == 0:
    raise ConfigError(f"{name} is empty: it holds no texts")


def _json_row(name, number, line, text_column, text_b_column, label_column) -> Row:
  record = userfile.json_object(name, number, line)
  values = []
  for column in (text_column, text_b_column, label_column):
    if column and column not in record:
      raise ConfigError(f"{name}:{number} has no key {column!r}; its keys are {sorted(record)}")
    values.append(record.get(column) if column else None)
  a, b, label = values
  # A null text is blank, not the text "None"; a null second text stays None, which the
  # classifier reads as blank too.
  return Row(number, "" if a is None else str(a), None if b is None else str(b), label)


def _table_rows(name, lines, kind, text_column, text_b_column, label_column):
  csv.field_size_limit(sys.maxsize)
  reader = csv.reader(lines, delimiter="\t" if kind == "tsv" else ",",
                      quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
  header = next(reader, None)
  if header is None:
    return
  wanted = [c for c in (text_column, text_b_column, label_column) if c]
  missing = [c for c in wanted if c not in header]
  if missing:
    raise ConfigError(f"{name} has no column {missing[0]!r}; its columns are {header} "
                      "(the text column is the classifier's finetune.text_column unless "
                      "--text_column names another)")
  index = [header.index(c) if c else None for c in (text_column, text_b_column, label_column)]
  end = reader.line_num
  for record in reader:
    start, end = end + 1, reader.line_num  # a quoted field may span several lines
    if not record:
      continue  # an empty line is not a row; a line of empty fields ("" or ,,) is one
    if len(record) < len(header):
      raise ConfigError(f"{name}:{start}: {len(record)} fields, the header names {len(header)}")
    a, b, label = (record[i] if i is not None else None for i in index)
    yield Row(start, a, b, label)


def chunks(items: typing.Iterable, size: int) -> typing.Iterator[list]:
  chunk = []
  for item in items:
    chunk.append(item)
    if len(chunk) == size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk

