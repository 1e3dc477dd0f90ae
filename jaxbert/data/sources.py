"""Where documents come from: `data.sources` specs, their readers, fingerprints and the mix.

  embedded                   the corpus shipped in the package (corpus.py)
  text:GLOB                  .txt (.gz, .xz) files; one document per blank-line-separated block
  jsonl:GLOB[:FIELD]         .jsonl (.gz, .xz) files; one document per line, in FIELD ("text")
  parquet:GLOB[:COLUMN]      .parquet files; one document per row, in COLUMN ("text"), nulls and
                             blanks skipped; COLUMN is what follows the last ':' when that is an
                             identifier (so C:\\corpus\\*.parquet stays one glob)
  tfds:NAME[/CONFIG][:SPLIT] a TFDS dataset prepared as array_record, read without TensorFlow
  task:TASK                  the texts of a fine-tuning task's train split (TASK as in
                             finetune.task: sentiment, file:PATH[,DEV_PATH], ...; files read with
                             finetune's default columns); never its dev rows

A GLOB that names a directory means every file with a matching extension below it. Each source
yields raw document texts of one split ("train" or "heldout"); user sources have no held-out
split of their own, so a document goes to "heldout" when a hash of its text says so (the same
3% rule as the embedded corpus), which keeps the split stable when files are added or reordered.

Files are read by readers.py, which streams them.
"""
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from typing import Callable, Iterator

from jaxbert.config import ConfigError

from . import corpus, readers

_VERSION = re.compile(r"\d+\.\d+\.\d+")


@dataclasses.dataclass(frozen=True)
class Source:
  spec: str  # as written in data.sources
  documents: Callable[[str, dict | None], Iterator[str]]  # (split, stats or None) -> texts
  fingerprint: Callable[[], str]  # changes whenever the documents may have


# --- splitting, hashing ------------------------------------------------------------------------

def text_hash(doc: str) -> int:
  return int.from_bytes(hashlib.blake2b(doc.encode("utf-8", "surrogatepass"),
                                        digest_size=8).digest(), "big")


def split_of_text(doc: str) -> str:
  return "heldout" if text_hash(doc) % 1000 < corpus.HELDOUT_PER_MILLE else "train"


def _read(kind: str, path: str, field: str, skip_bad: bool, stats: dict | None) -> Iterator[str]:
  if kind == "text":
    return readers.text_documents(path, stats)
  if kind == "jsonl":
    return readers.jsonl_documents(path, field, skip_bad, stats)
  return readers.parquet_documents(path, field, stats)


def _file_source(spec: str, kind: str, pattern: str, field: str, skip_bad: bool) -> Source:
  files = readers.expand(kind, pattern)  # now: a missing path fails before any work
  if kind == "parquet":  # so too a file that is not parquet or lacks the column (its footer)
    for path in files:
      readers.check_parquet(path, field)

  def documents(split: str, stats: dict | None) -> Iterator[str]:
    for path in files:
      if stats is not None:
        stats["files"] += 1
      for doc in _read(kind, path, field, skip_bad, stats):
        if split_of_text(doc) == split:
          yield doc

  return Source(spec, documents, lambda: readers.file_fingerprint(files) + f":{field}:{skip_bad}")


# --- TFDS -------------------------------------------------------------------------------------

def _tfds_source(spec: str, name: str, split: str, data_dir: str) -> Source:
  # Found and checked on disk first: tfds.data_source on an absent dataset would try to
  # download it, and on a tfrecord one fails with a message about random access.
  root = os.path.join(data_dir, *name.split("/"))
  versions = sorted((v for v in (os.listdir(root) if os.path.isdir(root) else [])
                     if _VERSION.fullmatch(v)
                     and os.path.isfile(os.path.join(root, v, "dataset_info.json"))),
                    key=lambda v: tuple(map(int, v.split("."))))
  how = (f"prepare it once, where the network is reachable, as array_record: `tfds build {name} "
         f"--file_format=array_record --data_dir={data_dir}` (or in Python, tfds.builder("
         f"{name!r}, data_dir=...).download_and_prepare(file_format='array_record')); set "
         f"data.tfds_data_dir (or TFDS_DATA_DIR) to that directory")
  if not versions:
    raise FileNotFoundError(f"data.sources: {spec}: TFDS dataset {name} is not prepared in "
                            f"{data_dir}; {how}")
  directory = os.path.join(root, versions[-1])
  with open(os.path.join(directory, "dataset_info.json")) as f:
    info = json.load(f)
  fmt = info.get("fileFormat", "tfrecord")
  if fmt not in ("array_record", "parquet"):
    raise ConfigError(f"data.sources: {spec}: {directory} is stored as {fmt}, which needs "
                      f"TensorFlow to read; {how}")
  splits = [s["name"] for s in info.get("splits", [])]
  if split.split("[")[0] not in splits:
    raise ConfigError(f"data.sources: {spec}: no split {split!r}; {name} has {splits}")
  fingerprint = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()

  def documents(want: str, stats: dict | None) -> Iterator[str]:
    import tensorflow_datasets as tfds  # slow to import: only when used

    data = tfds.builder_from_directory(directory).as_data_source(split=split)
    decode = readers.decoder(stats)
    for i in range(len(data)):
      example = data[i]
      value = example.get("text") if isinstance(example, dict) else None
      if value is None:
        raise ConfigError(f"data.sources: {spec}: examples have no 'text' feature "
                          f"(features: {sorted(example) if isinstance(example, dict) else '?'})")
      doc = decode(value, final=True) if isinstance(value, bytes) else str(value)
      for piece in readers.pieces(doc):
        if split_of_text(piece) == want:
          yield piece

  return Source(spec, documents, lambda: f"{fingerprint}:{split}")


# --- a fine-tuning task's own text -------------------------------------------------------------

def _task_source(spec: str, task_spec: str) -> Source:
  """The train texts of the tasks `task_spec` names, each text (and second text) a document.

  Task-adaptive pretraining (Gururangan et al., ACL 2020, "Don't Stop Pretraining"): the
  task's unlabelled text beside the corpus. Dev rows never enter, not even as held-out
  pretraining text, so fine-tuning's dev scores stay unseen; the held-out split of this source
  is empty.
  """
  from . import labelled  # here: the labelled sets load only for a task source

  tasks = labelled.load(task_spec)  # now: a bad spec or a missing file fails before any work
  texts = [t for task in tasks for split in (task.train.text_a, task.train.text_b or ())
           for t in split]
  digest = hashlib.blake2b(digest_size=16)
  for t in texts:
    digest.update(t.encode("utf-8", "surrogatepass") + b"\0")

  def documents(split: str, stats: dict | None) -> Iterator[str]:
    if split == "train":
      yield from texts

  return Source(spec, documents, lambda: f"task:{digest.hexdigest()}")


# --- parsing and mixing -----------------------------------------------------------------------

def _embedded() -> Source:
  def documents(split, stats):
    for doc in corpus.documents(split):
      yield from readers.pieces(doc)
  return Source("embedded", documents, corpus.fingerprint)


def as_list(value) -> list[str]:
  """A list, tuple or comma-separated string as a list of stripped, non-empty items."""
  items = value.split(",") if isinstance(value, str) else list(value or [])
  return [str(x).strip() for x in items if str(x).strip()]


def parse(spec: str, *, skip_bad_records: bool = False, tfds_dir: str = "") -> Source:
  kind, _, rest = spec.partition(":")
  if kind == "embedded" and not rest:
    return _embedded()
  if kind == "text" and rest:
    return _file_source(spec, "text", rest, "", False)
  if kind == "jsonl" and rest:
    pattern, field = rest, "text"
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail and not tail.endswith(readers.EXTENSIONS["jsonl"]):
      pattern, field = head, tail
    return _file_source(spec, "jsonl", pattern, field, skip_bad_records)
  if kind == "parquet" and rest:
    head, sep, tail = rest.rpartition(":")
    pattern, column = (head, tail) if sep and head and tail.isidentifier() else (rest, "text")
    return _file_source(spec, "parquet", pattern, column, False)
  if kind == "task" and rest:
    return _task_source(spec, rest)
  if kind == "tfds" and rest:
    name, _, split = rest.partition(":")
    return _tfds_source(spec, name, split or "train", readers.tfds_data_dir(tfds_dir))
  raise ConfigError(f"data.sources: {spec!r} is not a source; use embedded, text:GLOB, "
                    f"jsonl:GLOB[:FIELD], parquet:GLOB[:COLUMN], tfds:NAME[/CONFIG][:SPLIT] or "
                    f"task:TASK")


def weights_for(specs: list[str], weights) -> list[float]:
  values = as_list(weights)
  if not values:
    return [1.0] * len(specs)
  try:
    out = [float(w) for w in values]
  except ValueError:
    raise ConfigError(f"data.weights={weights!r}: not numbers") from None
  if len(out) != len(specs) or not all(math.isfinite(w) and w > 0 for w in out):
    raise ConfigError(f"data.weights={weights!r}: give one positive number per source "
                      f"({len(specs)}: {', '.join(specs)}), or --config.data.weights= for 1 each")
  return out


def _weighted(source: Source, weight: float, stats: dict) -> Iterator[str]:
  """The training documents of one source, each entering floor(w) times, plus once more for a
  fraction w - floor(w) of them chosen by a hash of the text (so the choice is fixed)."""
  whole, frac = int(weight), weight - int(weight)
  for p in range(math.ceil(weight)):
    for doc in source.documents("train", stats if p == 0 else None):
      if p < whole or (text_hash(doc) >> 11) / (1 << 53) < frac:
        yield doc


def mixed(sources: list[Source], weights: list[float], split: str,
          stats: list[dict]) -> Iterator[str]:
  """Documents of all sources, taken in turn (one from each, round-robin), so that any prefix
  (a max_documents cap, the tokenizer's sample) draws on every source. Weights act on
  documents of the train split only; held-out documents enter once."""
  if split == "train":
    streams = [_weighted(s, w, st) for s, w, st in zip(sources, weights, stats)]
  else:
    streams = [s.documents(split, None) for s in sources]
  sentinel = object()
  for group in itertools.zip_longest(*streams, fillvalue=sentinel):
    yield from (d for d in group if d is not sentinel)


def new_stats() -> dict:
  return dict(files=0, empty_files=0, binary_files=0, invalid_utf8_replaced=0, bad_records=0)
