"""Preprocessing and loader throughput: MB/s per core, peak RSS and size on disk of a store
build, tokens/s of the loader (masking included). Prints one JSON object.

  python benchmarks/prepare.py --size_mb=500 --size_mb=2000

For each size, writes the embedded corpus repeated to about that many MB as .txt files under
--dir (kept and reused), each copy after the first varied (`varied`) so that no document repeats
exactly and the tokenizer keeps meeting words it has not seen, as in a real corpus; builds a
store from them with `run.py --mode=prepare` in a fresh cache (the child's peak RSS, workers
included, is read from the kernel), then times the loader on it.
"""

import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_multi_integer("size_mb", [100], "corpus sizes to build, in MB")
flags.DEFINE_string("dir", "/tmp/jaxbert-prepare-bench", "where corpora and caches go")
flags.DEFINE_string("config", "configs/day.py", "config whose data settings are used")
flags.DEFINE_integer("loader_batches", 200, "batches of 256 rows timed per loader run")
flags.DEFINE_integer("loader_repeats", 3, "loader runs; the median is reported")
flags.DEFINE_integer("threads", 2, "loader threads")
flags.DEFINE_bool("vary", True, "vary each copy of the corpus after the first (see `varied`); "
                  "--novary repeats it exactly, so every chunk after the first copy is one the "
                  "encoder has cached")
FLAGS = flags.FLAGS


def varied(documents: list[str], copy: int) -> list[str]:
  """Copy number `copy` of the documents: the first as they are; in each later one, one word type
  in 20 of four or more letters (drawn per copy) becomes a pseudo-word, its letters shifted
  through the alphabet, and a document left unchanged gets the copy's number at its end. So no
  document is an exact duplicate, and each copy brings the tokenizer words it has not seen."""
  if copy == 0:
    return documents
  shift = 1 + (copy - 1) % 25
  table = {}

  def swap(m):
    word = m.group()
    if word not in table:
      drawn = zlib.crc32(f"{copy} {word}".encode()) % 20 == 0
      table[word] = ("".join(chr((ord(c) - 97 + shift) % 26 + 97) for c in word) if drawn
                     else word)
    return table[word]

  out = []
  for d in documents:
    v = re.sub(r"\b[a-z]{4,}\b", swap, d)
    out.append(v if v != d else f"{d} ({copy})")
  return out


def write_corpus(directory: str, size_mb: int, vary: bool = True) -> int:
  """The embedded corpus (both splits), copied (varied) into ~16 MB files until size_mb."""
  from jaxbert.data import corpus

  done = os.path.join(directory, ".done")
  if os.path.exists(done):
    return int(open(done).read())
  shutil.rmtree(directory, ignore_errors=True)
  os.makedirs(directory)
  documents = [r["text"] for n in corpus.FILES for r in corpus.records(n)]
  total, i = 0, 0
  while total < size_mb * 1e6:
    block = "\n\n".join(varied(documents, i) if vary else documents).encode()
    with open(os.path.join(directory, f"part-{i:04d}.txt"), "wb") as f:
      f.write(block)
    total, i = total + len(block), i + 1
  open(done, "w").write(str(total))
  return total


def build(corpus_dir: str, cache: str) -> dict:
  shutil.rmtree(cache, ignore_errors=True)
  report = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
  cmd = [sys.executable, "-c", report, sys.executable, "run.py", "--mode=prepare",
         f"--config={FLAGS.config}", f"--config.data.sources=text:{corpus_dir}",
         f"--config.data.cache_dir={cache}"]
  t0 = time.time()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  wall = time.time() - t0
  if proc.returncode:
    raise SystemExit(proc.stderr[-3000:])
  path = proc.stdout.split()[2]
  with open(os.path.join(path, "manifest.json")) as f:
    manifest = json.load(f)
  store_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path)
                    for f in names)
  return dict(path=path, wall_s=round(wall, 1), manifest=manifest,
              store_mb=round(store_bytes / 1e6, 1),
              peak_rss_mb=round(int(proc.stdout.split()[-1]) / 1024, 1))


def loader_tokens_per_s(path: str) -> dict:
  import itertools

  from jaxbert.data import loader, store

  s = store.TokenStore.load(path)
  rates = []
  for _ in range(FLAGS.loader_repeats):
    it = iter(loader.pretraining_batches(s.train, seed=0, batch_size=256, mask_rate=0.25,
                                         vocab_size=s.vocab_size, threads=FLAGS.threads,
                                         process_index=0, process_count=1))
    next(it)  # threads started, first batch ready
    t0 = time.time()
    n = sum(b["inputs"].size for b in itertools.islice(it, FLAGS.loader_batches))
    rates.append(n / (time.time() - t0))
  return dict(median_tokens_per_s=round(statistics.median(rates)),
              runs=[round(r) for r in rates], threads=FLAGS.threads)


def main(_):
  sys.path.insert(0, ROOT)
  cores = multiprocessing.cpu_count()
  results = {"cores": cores, "config": FLAGS.config, "varied": FLAGS.vary, "sizes": []}
  for size in FLAGS.size_mb:
    corpus_dir = os.path.join(FLAGS.dir, f"corpus-{size}mb" + ("" if FLAGS.vary else "-exact"))
    nbytes = write_corpus(corpus_dir, size, FLAGS.vary)
    b = build(corpus_dir, os.path.join(FLAGS.dir, f"cache-{size}mb"))
    m = b["manifest"]
    results["sizes"].append(dict(
        corpus_mb=round(nbytes / 1e6, 1), build_wall_s=b["wall_s"],
        mb_per_s=round(nbytes / 1e6 / b["wall_s"], 2),
        mb_per_s_per_core=round(nbytes / 1e6 / b["wall_s"] / cores, 2),
        peak_rss_mb=b["peak_rss_mb"], main_process_peak_rss_mb=m["peak_rss_mb"],
        store_mb=b["store_mb"],
        stage_seconds=m["stage_seconds"], workers=m["workers"],
        train_rows=m["counts"]["train"]["rows"], tokens=m["counts"]["train"]["tokens"],
        loader=loader_tokens_per_s(b["path"])))
    shutil.rmtree(os.path.join(FLAGS.dir, f"cache-{size}mb"), ignore_errors=True)
    print(json.dumps(results["sizes"][-1]), file=sys.stderr, flush=True)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
