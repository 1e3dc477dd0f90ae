"""Texts per second of --mode=predict, beside transformers' text-classification pipeline.

  python benchmarks/predict.py --workdir=workdirs/quick [--texts=20000] [--repeats=3]

Times, in one run and on the same texts (the shipped sentiment task's dev snippets, repeated to
--texts rows, so at that task's lengths):
- jaxbert: the workdir's classifier through the code --mode=predict runs (inference.commands:
  read a .txt file, encode, batch, write JSONL), loaded and compiled once; and the start-up of
  --mode=predict in a fresh process (imports, load, compile) on one text, twice: the first may
  fill the compilation cache, the second reads it.
- at equal dimensions, an original-arch classifier (BERT's layout, random weights: speed does
  not depend on them): jaxbert's predict, and transformers' pipeline("text-classification") on
  its export in PyTorch on the CPU, at batch sizes 1 (the pipeline's default) and 64.
The figures are medians over --repeats; the ratio is jaxbert's original-arch texts/s over the
pipeline's best. One JSON object goes to stdout. --shapes times the forward pass alone per batch
shape instead (the choice of loaded.TOKENS_PER_BATCH).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("workdir", "workdirs/quick", "A workdir holding one classifier (or name it).")
flags.DEFINE_string("classifier", None, "The classifier's name, if the workdir holds several.")
flags.DEFINE_integer("texts", 20000, "Texts to classify per repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats of each system; the median is reported.")
flags.DEFINE_bool("shapes", False, "Instead: the forward pass's tokens/s per batch shape (rows x "
                  "length), for the classifier's arch and the original arch.")
flags.DEFINE_integer("threads", 0, "torch threads (0: as many as jax's CPU devices' cores).")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _texts(n: int) -> list[str]:
  from jaxbert.data.labelled import embedded

  dev = list(embedded("sentiment").dev["dev"].text_a)
  return [dev[i % len(dev)] for i in range(n)]


def _timed(fn, repeats: int) -> float:
  fn()  # warm: compiles every shape it meets
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _startup(workdir: str, name: str | None, path: str) -> float:
  """Seconds of `run.py --mode=predict` on one text in a fresh process, load and compile in."""
  with open(path, "w") as f:
    f.write("a fine film\n")
  pick = [f"--classifier={name}"] if name else []
  t0 = time.perf_counter()
  subprocess.run([sys.executable, "run.py", "--mode=predict", f"--workdir={workdir}", *pick,
                  f"--input={path}"], cwd=ROOT, check=True, capture_output=True)
  return time.perf_counter() - t0


def _original_twin(clf, out: str) -> str:
  """A random original-arch classifier of `clf`'s dimensions, saved as jaxbert saves one."""
  import dataclasses

  import jax
  import numpy as np

  from jaxbert.tasks import classifier as classifier_lib
  from jaxbert.tasks import saved

  model = dataclasses.replace(clf.model, arch="original")
  module = classifier_lib.Classifier(model, len(clf.labels), "first")
  tokens = np.zeros((1, 8), np.int32)
  params = module.init(jax.random.key(0), tokens, np.ones_like(tokens))["params"]
  meta = {**clf.meta, "model": saved.model_fields(model), "pooling": "first"}
  path = os.path.join(out, "original")
  saved.write(path, params, meta, os.path.join(clf.path, "tokenizer.json"), {})
  return path


def _shapes(clf) -> dict:
  """tokens/s of the jitted forward pass per (rows, length), what TOKENS_PER_BATCH rests on."""
  import dataclasses

  import jax
  import numpy as np

  from jaxbert import cpu
  from jaxbert.tasks import classifier as classifier_lib

  out = {}
  for arch in (clf.model.arch, "original"):
    model = cpu.tuned(dataclasses.replace(clf.model, arch=arch))
    module = classifier_lib.Classifier(model, 2, "first")
    params = module.init(jax.random.key(0), np.zeros((1, 8), np.int32),
                         np.ones((1, 8), np.int32))["params"]
    fn = jax.jit(lambda p, t, m: module.apply({"params": p}, t, m))
    for rows in (32, 64, 128, 256, 512):
      for width in (32, 64):
        tokens = np.full((rows, width), 7, np.int32)
        seconds = _timed(lambda: fn(params, tokens, np.ones_like(tokens)).block_until_ready(),
                         10)
        out[f"{arch} {rows}x{width}"] = round(rows * width / seconds)
  return out


def main(argv):
  del argv
  sys.path.insert(0, ROOT)
  import torch
  import transformers

  from jaxbert import Classifier, compile_cache, hf
  from jaxbert.inference import commands

  compile_cache.enable()
  texts = _texts(FLAGS.texts)
  clf = Classifier.load(FLAGS.workdir, FLAGS.classifier)
  if FLAGS.shapes:
    print(json.dumps(dict(tokens_per_s=_shapes(clf)), indent=2))
    return
  with tempfile.TemporaryDirectory() as tmp:
    source = os.path.join(tmp, "texts.txt")
    with open(source, "w", encoding="utf-8") as f:
      f.writelines(t.replace("\n", " ") + "\n" for t in texts)
    sink = os.path.join(tmp, "out.jsonl")

    def jaxbert_predict(loaded):  # loaded and compiled once: start-up is timed apart
      return lambda: commands.write_predictions(loaded, source, sink, overwrite=True)

    result = dict(texts=len(texts), cpus=os.cpu_count(), classifier=clf.path,
                  dimensions={k: clf.meta["model"][k] for k in (
                      "num_layers", "hidden_size", "num_heads", "ffn_size", "vocab_size")})
    lengths = [len(e.ids) + 2 for e in clf.tokenizer.encode_batch(texts[:2000])]
    result["tokens_per_text"] = dict(mean=round(statistics.mean(lengths), 1),
                                     max=max(lengths), max_len=clf.max_len)
    seconds = _timed(jaxbert_predict(clf), FLAGS.repeats)
    result["jaxbert"] = dict(arch=clf.model.arch, texts_per_s=round(len(texts) / seconds))
    twin = _original_twin(clf, tmp)
    seconds = _timed(jaxbert_predict(Classifier.load(twin)), FLAGS.repeats)
    result["jaxbert_original"] = dict(texts_per_s=round(len(texts) / seconds))
    hf_dir = os.path.join(tmp, "hf")
    hf.export_classifier(twin, hf_dir)
    torch.set_num_threads(FLAGS.threads or os.cpu_count())
    pipe = transformers.pipeline("text-classification", model=hf_dir, device=-1)
    for batch in (1, 64):
      seconds = _timed(lambda: pipe(texts, batch_size=batch, truncation=True,
                                    max_length=clf.max_len), FLAGS.repeats)
      result[f"hf_pipeline_batch_{batch}"] = dict(texts_per_s=round(len(texts) / seconds))
    best = max(result[f"hf_pipeline_batch_{b}"]["texts_per_s"] for b in (1, 64))
    result["ratio_original_over_pipeline"] = round(
        result["jaxbert_original"]["texts_per_s"] / best, 2)
    result["startup_s"] = [round(_startup(FLAGS.workdir, FLAGS.classifier,
                                          os.path.join(tmp, "one.txt")), 1) for _ in range(2)]
    result["versions"] = dict(torch=torch.__version__, transformers=transformers.__version__)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
