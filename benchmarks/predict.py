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
shape instead (the choice of loaded.TOKENS_PER_BATCH). --profile says where predict's time goes,
for both classifiers: reading the file, tokenizing, batching, the model (each batch waited for),
the answers (softmax, labels) and writing the JSON lines, in seconds per stage; and the tokens
the model computed (padding included) against the pipeline's at batch 64, which pads each batch
of 64 texts in input order to its longest.
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
flags.DEFINE_bool("profile", False, "Instead: seconds per stage of predict, and tokens computed "
                  "against the pipeline's.")
flags.DEFINE_integer("threads", 0, "torch threads (0: as many as jax's CPU devices' cores).")
FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _texts(n: int) -> list[str]:
  from jaxbert.data.labelled import embedded

  dev = list(embedded("sentiment").dev["dev"].text_a)
  return [dev[i % len(dev)] for i in range(n)]


def _timed(fn, repeats: int, warm: bool = True) -> float:
  if warm:
    fn()  # compiles every shape it meets
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


def _torch_seconds(model, batches, repeats: int) -> float:
  """Seconds of a transformers model's forward pass over (tokens, mask) batches, median."""
  import torch

  def forward():
    with torch.inference_mode():
      for tokens, mask in batches:
        model(input_ids=torch.from_numpy(tokens).long(), attention_mask=torch.from_numpy(mask))
  return _timed(forward, repeats)


def _profile(clf, source: str, sink: str, repeats: int, torch_model=None) -> dict:
  """Seconds per stage of write_predictions(clf, source, sink), medians over `repeats`; with
  `torch_model` (clf exported to transformers), its forward pass over the same batches and over
  the pipeline's."""
  import numpy as np

  from jaxbert.inference import commands, inputs, loaded
  from jaxbert.tasks import classifier as classifier_lib

  runner = clf._runner
  texts = [r.text_a for r in inputs.rows(source)]
  stats = dict(model_s=0.0, padded_tokens=0, batches=0)
  shapes = []  # the batches of one run, as the model got them

  def waited(params, tokens, mask):  # the model alone: each batch waited for
    t0 = time.perf_counter()
    out = runner._outputs(params, tokens, mask).block_until_ready()
    stats["model_s"] += time.perf_counter() - t0
    if len(shapes) < stats["batches"] + 1:
      shapes.append((np.asarray(tokens), np.asarray(mask)))
    stats["padded_tokens"] += tokens.size
    stats["batches"] += 1
    return out

  def chunks(fn):
    return lambda: [fn(texts[s:s + loaded.CHUNK]) for s in range(0, len(texts), loaded.CHUNK)]

  stages = dict(
      read=lambda: list(inputs.rows(source)),
      tokenize=chunks(lambda t: classifier_lib.encode(clf.tokenizer, t, clf.max_len)),
      runner=chunks(lambda t: runner._chunk(waited, t, None)),
      outputs=lambda: clf.outputs(texts),
      predict=lambda: clf.predict(texts),
      whole=lambda: commands.write_predictions(clf, source, sink, overwrite=True))
  seconds = {}
  for name, fn in stages.items():
    fn()  # warm: compiles every shape it meets
    stats.update(model_s=0.0, padded_tokens=0, batches=0)
    seconds[name] = _timed(fn, repeats, warm=False)
    if name == "runner":
      model = {k: v / repeats for k, v in stats.items()}  # per run, compiling excluded
  tokens, mask, _ = classifier_lib.encode(clf.tokenizer, texts, clf.max_len)
  lengths = mask.sum(1)
  pipeline = [(tokens[s:s + 64, :n], mask[s:s + 64, :n])  # input order, each to its longest
              for s in range(0, len(texts), 64) for n in [lengths[s:s + 64].max()]]
  pipeline_tokens = sum(t.size for t, _ in pipeline)
  torch = {}
  if torch_model is not None:
    ours, theirs = (_torch_seconds(torch_model, b, repeats) for b in (shapes, pipeline))
    torch = dict(torch_forward=dict(
        jaxbert_batches_s=round(ours, 3), tokens_per_s=round(model["padded_tokens"] / ours),
        pipeline_batches_s=round(theirs, 3)))
  return dict(
      seconds=dict(
          read=round(seconds["read"], 3), tokenize=round(seconds["tokenize"], 3),
          batching=round(seconds["runner"] - seconds["tokenize"] - model["model_s"], 3),
          model=round(model["model_s"], 3),
          outputs_call=round(seconds["outputs"] - seconds["runner"], 3),
          answers=round(seconds["predict"] - seconds["outputs"], 3),
          writing=round(seconds["whole"] - seconds["predict"] - seconds["read"], 3),
          whole=round(seconds["whole"], 3)),
      texts_per_s=round(len(texts) / seconds["whole"]),
      tokens=dict(real=int(lengths.sum()), computed=int(model["padded_tokens"]),
                  batches=int(model["batches"]), pipeline_batch_64=pipeline_tokens),
      model_tokens_per_s=round(model["padded_tokens"] / model["model_s"]), **torch)


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

    if FLAGS.profile:
      twin = _original_twin(clf, tmp)
      hf.export_classifier(twin, os.path.join(tmp, "hf"))
      torch.set_num_threads(FLAGS.threads or os.cpu_count())
      theirs = transformers.AutoModelForSequenceClassification.from_pretrained(
          os.path.join(tmp, "hf"), local_files_only=True).eval()
      print(json.dumps({clf.model.arch: _profile(clf, source, sink, FLAGS.repeats),
                        "original": _profile(Classifier.load(twin), source, sink, FLAGS.repeats,
                                             theirs)}, indent=2))
      return
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
