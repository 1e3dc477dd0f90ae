"""Reading documents out of files: plain text and JSON lines, compressed or not, and parquet;
streamed.

Files are read in chunks (parquet files PARQUET_BATCH_ROWS rows of one column at a time), and a
document longer than MAX_DOC_CHARS is cut into pieces at whitespace, so one 100 MB line never
sits in memory as one string. Bad bytes are replaced (U+FFFD) and counted; binary and empty
files are skipped and counted. `stats` is a dict of those counts (sources.new_stats), or None
when nothing is to be counted.
"""
import codecs
import glob as glob_lib
import gzip
import hashlib
import itertools
import json
import lzma
import os
import re
import sys
from typing import Iterator

from jaxbert.config import ConfigError

MAX_DOC_CHARS = 1 << 20  # longer documents are cut into pieces of at most this many characters
CHUNK_BYTES = 1 << 20  # read size for text files
PARQUET_BATCH_ROWS = 256  # rows per read from a parquet file, whatever its row groups hold
EXTENSIONS = {"text": (".txt", ".txt.gz", ".txt.xz"), "jsonl": (".jsonl", ".jsonl.gz", ".jsonl.xz"),
              "parquet": (".parquet",)}
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


def _log(msg: str) -> None:
  print(f"[jaxbert.data] {msg}", file=sys.stderr, flush=True)


def pieces(doc: str) -> Iterator[str]:
  """`doc` cut at whitespace into pieces of at most MAX_DOC_CHARS (a cut mid-word only when a
  piece holds no whitespace at all); nothing for a blank block."""
  if not doc.strip():
    return
  while len(doc) > MAX_DOC_CHARS:
    cut = max(doc.rfind(" ", 0, MAX_DOC_CHARS), doc.rfind("\n", 0, MAX_DOC_CHARS))
    cut = cut if cut > 0 else MAX_DOC_CHARS
    yield doc[:cut]
    doc = doc[cut:]
  yield doc


# --- decoding that counts what it replaces --------------------------------------------------

class _Replacements:
  """A codecs error handler that replaces bad bytes with U+FFFD and counts them."""

  def __init__(self):
    self.count = 0
    self.name = f"jaxbert-replace-{id(self)}"
    codecs.register_error(self.name, self._handle)

  def _handle(self, err):
    self.count += 1
    return "\ufffd", err.end


def decoder(stats: dict | None):
  counter = _Replacements()
  decoder = codecs.getincrementaldecoder("utf-8")(errors=counter.name)

  def decode(data: bytes, final: bool = False) -> str:
    before = counter.count
    out = decoder.decode(data, final)
    if stats is not None:
      stats["invalid_utf8_replaced"] += counter.count - before
    return out
  return decode


# --- files ------------------------------------------------------------------------------------

def expand(kind: str, pattern: str) -> list[str]:
  exts = EXTENSIONS[kind]
  if os.path.isdir(pattern):
    pattern = os.path.join(pattern, "**", "*")
  matched = sorted(p for p in glob_lib.glob(os.path.expanduser(pattern), recursive=True)
                   if os.path.isfile(p))
  files = [p for p in matched if p.endswith(exts)]
  if not files:
    what = f"{len(matched)} files but none ending in {' or '.join(exts)}" if matched else "no file"
    raise FileNotFoundError(f"data.sources: {kind}:{pattern} matches {what}")
  return files


def file_fingerprint(files: list[str]) -> str:
  # Name, size and modification time: rehashing gigabytes on every run would cost minutes.
  h = hashlib.sha256()
  for p in files:
    st = os.stat(p)
    h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()


def _open(path: str):
  if path.endswith(".gz"):
    return gzip.open(path, "rb")
  return lzma.open(path, "rb") if path.endswith(".xz") else open(path, "rb")


def _chunks(path: str) -> Iterator[bytes]:
  try:
    with _open(path) as f:
      while chunk := f.read(CHUNK_BYTES):
        yield chunk
  except (OSError, EOFError, lzma.LZMAError) as e:  # a truncated or corrupt .gz or .xz
    raise ConfigError(f"{path}: cannot be read ({e}); fix or remove the file") from None


def _skip_file(path: str, first: bytes, stats: dict | None) -> bool:
  """Empty and binary files (NUL bytes near the start) are skipped, counted and named once."""
  if not first:
    if stats is not None:
      stats["empty_files"] += 1
    return True
  if b"\0" in first[:8192]:
    if stats is not None:
      stats["binary_files"] += 1
      _log(f"skipping {path}: binary, not text")
    return True
  return False


def text_documents(path: str, stats: dict | None) -> Iterator[str]:
  """Blank-line-separated blocks of a text file, read in chunks; long blocks cut into pieces."""
  chunks = _chunks(path)
  first = next(chunks, b"")
  if _skip_file(path, first, stats):
    return
  decode = decoder(stats)
  buf = ""
  for chunk in itertools.chain([first], chunks):
    buf += decode(chunk).replace("\r\n", "\n")
    *blocks, buf = _BLANK_LINE.split(buf)
    for block in blocks:
      yield from pieces(block)
    while len(buf) > 2 * MAX_DOC_CHARS:  # no blank line for a long stretch (say one huge line)
      piece = next(pieces(buf[:MAX_DOC_CHARS + 1]), None)
      if piece is not None:
        yield piece
      buf = buf[len(piece) if piece is not None else MAX_DOC_CHARS:]
  buf += decode(b"", final=True)
  yield from pieces(buf)


def _lines(path: str) -> Iterator[bytes]:
  try:
    with _open(path) as f:
      yield from f
  except (OSError, EOFError) as e:
    raise ConfigError(f"{path}: cannot be read ({e}); fix or remove the file") from None


def jsonl_documents(path: str, field: str, skip_bad: bool, stats: dict | None) -> Iterator[str]:
  lines = _lines(path)
  first = next(lines, b"")
  if _skip_file(path, first, stats):
    return
  for number, line in enumerate(itertools.chain([first], lines), 1):
    if not line.strip():
      continue
    decode = decoder(stats)
    problem = None
    try:
      record = json.loads(decode(line, final=True))
    except json.JSONDecodeError as e:
      problem = f"not JSON ({e.msg})"
    else:
      if not isinstance(record, dict) or not isinstance(record.get(field), str):
        problem = f"no string field {field!r}"
    if problem is None:
      yield from pieces(record[field])
    elif skip_bad:
      if stats is not None:
        stats["bad_records"] += 1
    else:
      raise ConfigError(f"{path}:{number}: {problem}; fix the line, name another field "
                        f"(jsonl:GLOB:FIELD), or set data.skip_bad_records=True to skip and "
                        f"count such lines")


# --- parquet ----------------------------------------------------------------------------------

def _parquet_file(path: str):
  import pyarrow.parquet as pq  # slow to import: only when used

  # Without pre-buffering, in 1 MB reads: pyarrow's default reads a row group's whole column
  # chunk at once, and its writer's default row group (a million rows) can hold gigabytes of text.
  return pq.ParquetFile(path, pre_buffer=False, buffer_size=CHUNK_BYTES)


def _is_text(kind) -> bool:
  import pyarrow as pa

  if pa.types.is_dictionary(kind):  # a categorical column written from pandas
    return _is_text(kind.value_type)
  return kind in (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())


def _lfs_pointer(path: str) -> bool:
  # A dataset repository cloned with git but without git-lfs holds these in place of its files.
  with open(path, "rb") as f:
    return f.read(64).startswith(b"version https://git-lfs")


def check_parquet(path: str, column: str) -> None:
  """Fails, naming the file, unless `path` is a parquet file with a text column `column`; reads
  only the footer."""
  import pyarrow as pa

  if os.path.getsize(path) == 0:
    return  # skipped and counted when read, as an empty text file is
  try:
    with _parquet_file(path) as f:
      schema = f.schema_arrow
  except (pa.ArrowException, OSError) as e:
    what = ("it is a Git LFS pointer: download the file itself (huggingface_hub, git lfs pull)"
            if _lfs_pointer(path) else "fix or remove it, or narrow the glob")
    raise ConfigError(f"data.sources: {path} is not a parquet file "
                      f"({str(e).splitlines()[0]}); {what}") from None
  if column not in schema.names:
    raise ConfigError(f"data.sources: {path} has no column {column!r} (its columns: "
                      f"{', '.join(schema.names)}); name the text column: parquet:GLOB:COLUMN")
  kind = schema.field(column).type
  if not _is_text(kind):
    raise ConfigError(f"data.sources: {path}: column {column!r} holds {kind}, not text; name a "
                      f"string column: parquet:GLOB:COLUMN")


def parquet_documents(path: str, column: str, stats: dict | None) -> Iterator[str]:
  """One document per row, the value of `column` (long ones cut into pieces), in file order;
  null and blank values skipped. Reads that one column, PARQUET_BATCH_ROWS rows at a time."""
  if os.path.getsize(path) == 0:
    _skip_file(path, b"", stats)
    return
  decode = decoder(stats)
  with _parquet_file(path) as f:
    if f.metadata.num_rows == 0:
      _skip_file(path, b"", stats)
      return
    # One column: nothing for threads to decode side by side.
    for batch in f.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column],
                                use_threads=False):
      for value in batch.column(0).to_pylist():
        if isinstance(value, bytes):  # a binary column: bad bytes replaced and counted
          value = decode(value, final=True)
        if value is not None:
          yield from pieces(value)


def tfds_data_dir(configured: str = "") -> str:
  """Where prepared TFDS datasets are: the setting, else $TFDS_DATA_DIR, else TFDS's default."""
  return os.path.expanduser(configured or os.environ.get("TFDS_DATA_DIR")
                            or os.path.join("~", "tensorflow_datasets"))
