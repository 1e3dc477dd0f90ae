"""Rebuild the embedded sentiment task from the vaderSentiment source archive on PyPI.

  python jaxbert/data/labelled/build.py SCRATCH_DIR

Needs pip and PyPI access; run time never does. The version is pinned and the archive's hash
checked, so a rebuild writes the same files byte for byte.
"""
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "3.3.2"
SDIST = f"vaderSentiment-{VERSION}.tar.gz"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER = f"vaderSentiment-{VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
DEV_PERCENT = 20


def is_dev(example_id: str) -> bool:
  # A hash of the id, not a shuffle: the split never depends on file order or a seed.
  return int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) % 100 < DEV_PERCENT


def write_split(name: str, rows: list[dict]):
  """HERE/NAME.jsonl.xz, one JSON object per line (build_spam.py writes through this too)."""
  # preset and no timestamp in the xz stream keep the bytes reproducible
  with lzma.open(os.path.join(HERE, f"{name}.jsonl.xz"), "wt", encoding="utf-8", preset=9) as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def read_snippets(scratch):
  """(id, mean score, text) per line of the ground-truth file inside the sdist."""
  subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  f"vaderSentiment=={VERSION}", "-d", scratch], check=True)
  path = os.path.join(scratch, SDIST)
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  assert digest == SHA256, f"{SDIST} has sha256 {digest}, expected {SHA256}"
  with tarfile.open(path) as outer:
    inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(INNER).read()))
    raw = inner.extractfile(MEMBER).read().decode("utf-8")
  for line in raw.splitlines():
    if line.strip():
      snippet_id, score, text = line.split("\t", 2)
      yield snippet_id, float(score), text.strip()


def main(scratch):
  os.makedirs(scratch, exist_ok=True)
  splits, zeros = {"train": [], "dev": []}, 0
  for snippet_id, score, text in read_snippets(scratch):
    if score == 0:  # neither positive nor negative: no label
      zeros += 1
      continue
    split = "dev" if is_dev(snippet_id) else "train"
    splits[split].append({"id": snippet_id, "text": text, "label": int(score > 0)})
  for split, rows in splits.items():
    write_split(f"sentiment_{split}", rows)
    positive = sum(r["label"] for r in rows)
    print(f"{split}: {len(rows)} snippets, {positive} positive, {len(rows) - positive} negative")
  print(f"dropped {zeros} snippets with a mean score of exactly 0")


if __name__ == "__main__":
  main(sys.argv[1])
