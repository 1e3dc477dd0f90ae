"""What the stages of a token store build share (build.py): its splits, its log and progress
lines on stderr, and documents streamed in batches of about so many characters, from the sources
or from the clean-*.jsonl files one stage leaves for the next."""
import json
import sys
from typing import Iterable, Iterator

from jaxbert.progress import Progress

SPLITS = ("train", "heldout")


def log(msg: str) -> None:
  print(f"[jaxbert.data] {msg}", file=sys.stderr, flush=True)


def progress(desc: str) -> Progress:
  return Progress(unit="chars", stream=sys.stderr, desc=desc, tag="[jaxbert.data] ")


def chunked(it: Iterable[str], chars: int) -> Iterator[list[str]]:
  """Lists of consecutive items holding about `chars` characters each."""
  batch, n = [], 0
  for x in it:
    batch.append(x)
    n += len(x)
    if n >= chars:
      yield batch
      batch, n = [], 0
  if batch:
    yield batch


def jsonl(path: str) -> Iterator[str]:
  with open(path, encoding="utf-8") as f:
    for line in f:
      yield json.loads(line)

