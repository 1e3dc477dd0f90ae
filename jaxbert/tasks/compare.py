"""Fine-tune a pretrained checkpoint on labelled tasks beside three baselines; the GLUE protocol.

  from jaxbert.tasks import compare
  compare.run("workdirs/quick", compare.default_config())  # the table, WORKDIR/finetune.json
  compare.glue("workdirs/day", cfg)   # GLUE tasks of cfg.task, + average: WORKDIR/finetune/glue.*

Every task is scored for four models trained on the same split: the pretrained encoder, the same
architecture from random init (no pretraining), a small CNN on the same tokens and a bag-of-words
linear model, so the value of pretraining is visible. Scores are on the dev split(s); each neural
fine-tune is repeated over seeds and the median of each score reported, as in the cramming paper
(Geiping & Goldstein, ICML 2023), since small-data fine-tuning varies a lot from seed to seed.
"""

import dataclasses
import json
import os
import time
import typing

import jax
import ml_collections
import numpy as np

from jaxbert import checkpoint, cpu
from jaxbert import config as config_lib
from jaxbert import workdir as workdir_lib
from jaxbert.config import ConfigError
from jaxbert.data import labelled
from jaxbert.data.labelled import column
from jaxbert.model import ModelConfig
from jaxbert.workdir import metrics as metrics_log

from . import augment, baselines, curve, saved, tables
from . import classifier as classifier_lib
from . import finetune as finetune_lib


def default_config() -> ml_collections.ConfigDict:
  """The `finetune` part of the config tree (fields and comments in jaxbert/config.py)."""
  return config_lib.default().finetune


def _check(cfg, model_max_len: int) -> int:
  max_len = cfg.max_len or model_max_len
  if not 3 <= max_len <= model_max_len:
    raise ConfigError(f"finetune.max_len={cfg.max_len} must be in [3, model.max_len="
                      f"{model_max_len}] of the checkpoint (0 = the model's)")
  if cfg.pooling not in ("first", "mean"):
    raise ConfigError(f"finetune.pooling={cfg.pooling!r}: use \"first\" or \"mean\"")
  if cfg.reinit_layers < 0:
    raise ConfigError(f"finetune.reinit_layers={cfg.reinit_layers} must be >= 0")
  if cfg.seeds < 1 or cfg.epochs < 1:
    raise ConfigError(f"finetune.seeds={cfg.seeds} and finetune.epochs={cfg.epochs} must be "
                      ">= 1")
  return max_len


def run_task(task, tokenizer, model_config: ModelConfig, encoder_params, cfg, max_len: int,
             augmenter=None):
  """(rows, kept) of one task: rows {task, metric, train_examples, <model>: median,
  <model>_seeds: [...]}, one per size of finetune.train_sizes and column; kept, the pretrained
  classifier of the largest size, worth saving (see `_keep`). `augmenter(split)` adds examples
  (finetune.augment) to each training subset."""
  if task.pair and max_len < 5:
    raise ConfigError(f"finetune.max_len={max_len} leaves no room for a pair: [CLS] a [SEP] b "
                      "[SEP] needs 5 tokens or more")
  order = curve.label_order(task.train.labels, task.regression)
  sizes = curve.train_sizes(cfg, len(task.train))
  devs = {name: classifier_lib.encode(tokenizer, s.text_a, max_len, s.text_b)[:2]
          for name, s in task.dev.items()}
  rows = []
  for size in sizes:
    train = task.train.subset(np.sort(order[:size]))
    size_rows, kept = _run_size(task, train, augmenter(train) if augmenter else train, devs,
                                tokenizer, model_config, encoder_params, cfg, max_len)
    rows += size_rows
  return rows, kept


def _run_size(task, labelled_train, train, devs, tokenizer, model_config, encoder_params, cfg,
              max_len):
  """Rows and the kept classifier of one training set (`train`: `labelled_train` and any
  augmented copies of it)."""
  tokens, mask, cut = classifier_lib.encode(tokenizer, train.text_a, max_len, train.text_b)
  arrays = (tokens, mask, train.labels)
  if cut:
    # Cut texts lose words the bag-of-words baseline still sees, so say how many.
    more = (f"finetune.max_len up to the model's {model_config.max_len} keeps more"
            if max_len < model_config.max_len else "the model takes no more")
    print(f"[finetune] {task.name}: {cut} of {len(train)} training examples "
          f"({100 * cut / len(train):.0f}%) are longer than finetune.max_len={max_len} tokens and "
          f"lose their ends; {more}", flush=True)
  epochs = finetune_lib.epochs_for(cfg, len(train))
  if epochs != cfg.epochs:
    cfg = ml_collections.ConfigDict({**cfg.to_dict(), "epochs": epochs})
  label = f"{task.name} ({len(labelled_train)} labels" + (
      f", {len(train)} examples" if len(train) != len(labelled_train) else "") + (
      f", {epochs} epochs)")

  classifier = classifier_lib.Classifier(model_config, task.num_outputs, cfg.pooling)
  cnn = baselines.TextCNN(model_config.vocab_size, cfg.cnn_embed, cfg.cnn_filters,
                          task.num_outputs, cfg.cnn_dropout)
  runs = {  # name -> (model, compiled steps, encoder params)
      "pretrained": (classifier, finetune_lib.trainer(classifier, cfg, len(train), task.regression),
                     encoder_params),
      "no_pretraining": (classifier, None, None),
      "cnn": (cnn, finetune_lib.trainer(cnn, cfg, len(train), task.regression, cfg.cnn_lr), None),
  }
  if not cfg.baselines:
    runs = {"pretrained": runs["pretrained"]}
  per_seed = {name: [] for name in runs}
  candidates = []  # (dev outputs, params) of each pretrained seed, on the host
  for seed in range(cfg.seeds):
    for name, (model, steps, params) in runs.items():
      steps = steps or runs["pretrained"][1]
      outputs, trained = finetune_lib.finetune(model, steps, params, arrays, devs, cfg, seed)
      if name == "pretrained":
        candidates.append((outputs, jax.device_get(trained)))
      per_seed[name].append(tables.score(
          task, {s: finetune_lib.labels(o) for s, o in outputs.items()}))
      shown = ", ".join(f"{c} {v:.4f}" for c, v in per_seed[name][-1].items())
      print(f"[finetune] {label} seed {seed} {name}: {shown}", flush=True)
  medians = {name: tables.aggregate(s) for name, s in per_seed.items()}
  bow = tables.score(task, baselines.bag_of_words(task, train, cfg)) if cfg.baselines else None
  rows = []
  for split in task.dev:
    for m in task.metrics:
      c = column(split, m)
      row = dict(task=task.name, metric=c, in_average=c in task.headline,
                 headline=c == (task.headline or task.columns())[0])
      for name in runs:
        row[name], row[name + "_seeds"] = medians[name][0][c], medians[name][1][c]
      if bow is not None:
        row["bag_of_words"] = bow[c]
      row.update(train_examples=len(labelled_train), examples=len(train), epochs=epochs,
                 train_examples_cut=cut, dev_examples=len(task.dev[split]))
      rows.append(row)
  return rows, _keep(task, per_seed["pretrained"], candidates, cut)


class Kept(typing.NamedTuple):
  """The pretrained fine-tune a task keeps: the seed whose headline dev score is the median."""
  seed: int
  params: dict
  dev: dict  # {column: score} of that seed
  outputs: dict  # {dev split: its logits (or values)}
  note: str  # which seed and why, for classifier.json
  train_examples_cut: int


def _keep(task, scores: list[dict], candidates: list, cut: int) -> Kept:
  headline = (task.headline or task.columns())[0]
  order = sorted(range(len(scores)), key=lambda s: (scores[s][headline], s))
  seed = order[(len(order) - 1) // 2]  # the median; the lower middle one of an even number
  note = (f"seed {seed}: its dev {headline} is the median of {len(scores)} seeds" +
          (" (the lower of the two middle ones)" if len(scores) % 2 == 0 else ""))
  outputs, params = candidates[seed]
  return Kept(seed, params, scores[seed], outputs, note, cut)


def _settings(task_cfg) -> ml_collections.ConfigDict:
  cfg = default_config()
  cfg.lock()
  cfg.update(task_cfg or {})  # an unknown field is a KeyError, not a silent default
  return cfg


def _run_all(workdir: str, cfg) -> dict:
  start = time.time()
  task_list = labelled.load(cfg.task, cfg)
  pretrained = workdir_lib.pretrained(workdir)  # the params alone: no optimizer is built
  encoder_params, step = pretrained.params["encoder"], pretrained.step
  max_len = _check(cfg, pretrained.model.max_len)
  store = workdir_lib.token_store(pretrained.config, workdir)
  workdir_lib.check_tokenizer(workdir, store.tokenizer_path)
  tokenizer = store.tokenizer()
  model_config = cpu.tuned(dataclasses.replace(pretrained.model, dropout=cfg.dropout))
  metas = {task.name: _meta(task, cfg, pretrained, max_len, store.tokenizer_path)
           for task in task_list}
  names = {task.name: _name(cfg, task, len(task_list)) for task in task_list}
  for task in task_list:  # before any fine-tuning: a refusal costs nothing
    saved.check_replace(workdir, names[task.name], metas[task.name], cfg.overwrite)
  # finetune.augment: copies of each training subset, the same for all four models.
  lm = (augment.MaskedLM(tokenizer, cpu.tuned(pretrained.model), pretrained.params)
        if cfg.augment == "mlm" else None)
  augmenter = (lambda split: augment.expand(split, cfg, lm)) if cfg.augment else None
  rows, classifiers = [], {}
  for task in task_list:
    task_rows, kept = run_task(task, tokenizer, model_config, encoder_params, cfg, max_len,
                               augmenter)
    rows += task_rows
    classifiers[task.name] = _save(workdir, names[task.name], metas[task.name], kept,
                                   store.tokenizer_path)
  for row in rows:
    metrics_log.write(workdir, {"kind": "finetune", "step": step, "checkpoint_step": step, **row})
  return dict(task=cfg.task, checkpoint_step=step, seeds=cfg.seeds, rows=rows,
              classifiers=classifiers, seconds=round(time.time() - start, 1),
              config=cfg.to_dict())


def _name(cfg, task, num_tasks: int) -> str:
  name = cfg.name or task.name
  if cfg.name and num_tasks > 1:  # one directory per task of a GLUE run
    name = f"{cfg.name}-{task.name}"
  if not name or os.sep in name or name.startswith("."):
    raise ConfigError(f"finetune.name={name!r} must be a plain directory name")
  return name


def _meta(task, cfg, pretrained, max_len: int, tokenizer_path: str) -> dict:
  """classifier.json less what fine-tuning measures (see saved.py)."""
  return dict(task=task.name, spec=cfg.task,
              labels=list(task.classes) if task.classes is not None else "regression",
              metrics=list(task.metrics), pair=task.pair, max_len=max_len, pooling=cfg.pooling,
              text_column=cfg.text_column, text_b_column=cfg.text_b_column if task.pair else "",
              model=saved.model_fields(pretrained.model), checkpoint_step=pretrained.step,
              lowercase=bool(pretrained.config.data.lowercase),
              tokenizer_sha256=saved.sha256(tokenizer_path), finetune=saved.settings_of(cfg))


def _save(workdir: str, name: str, meta: dict, kept: Kept, tokenizer_path: str) -> str:
  path = saved.directory(workdir, name)
  meta = {**meta, "dev": kept.dev, "seed": kept.seed, "kept": kept.note,
          "train_examples_cut": kept.train_examples_cut}
  # What a user checks a loaded classifier against: the probabilities (values) it gave on dev.
  dev = {split: np.asarray(o if o.ndim == 1 else jax.nn.softmax(o, axis=-1), np.float32)
         for split, o in kept.outputs.items()}
  saved.write(path, kept.params, meta, tokenizer_path, dev)
  print(f"[finetune] saved the {meta['task']} classifier ({kept.note}) to {path}", flush=True)
  return path


def run(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """Fine-tunes the latest checkpoint and the baselines on every task of finetune.task.

  Prints the table and writes it to WORKDIR/finetune.json and as "finetune" lines of
  metrics.jsonl (one per task, metric and size). With several finetune.train_sizes, also the
  label-budget curve: printed, and WORKDIR/label_curve.json and label_curve.png (curve.py).
  """
  cfg = _settings(task_cfg)
  result = _run_all(workdir, cfg)
  largest = {}
  for r in result["rows"]:
    largest[r["task"]] = max(largest.get(r["task"], 0), r["train_examples"])
  result["table"] = tables.table([r for r in result["rows"]
                                  if r["train_examples"] == largest[r["task"]]])
  points = curve.points(result["rows"])
  if any(len(ps) > 1 for ps in points.values()):
    result["curve"], result["curve_table"] = points, curve.table(points)
    result["curve_png"] = curve.write(workdir, points, dict(
        task=cfg.task, checkpoint_step=result["checkpoint_step"], seeds=cfg.seeds,
        config=result["config"]))
  path = os.path.join(workdir, "finetune.json")
  with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
  os.replace(path + ".tmp", path)
  _print(result)
  return result


def _print(result):
  print(f"fine-tuned checkpoint step {result['checkpoint_step']} on {result['task']}; dev scores, "
        f"median of {result['seeds']} seed(s) (min–max):\n{result['table']}", flush=True)
  if "curve_table" in result:
    print(f"\nlabel-budget curve (median of {result['seeds']} seed(s); the same dev split for "
          f"every size; {result['curve_png']}):\n{result['curve_table']}", flush=True)


def after_training(workdir: str, task_cfg: ml_collections.ConfigDict) -> dict:
  """run() once per checkpoint step and settings: rerunning a finished run's command prints the
  table it already made, and keeps its classifiers, instead of fine-tuning again."""
  cfg = _settings(task_cfg)
  with checkpoint.Checkpoints(workdir, writer=False) as ckpts:
    step = ckpts.latest_step()
  path = os.path.join(workdir, "finetune.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    kept = previous.get("classifiers")  # absent from older runs' files, or deleted since
    if (previous.get("checkpoint_step"), previous.get("config")) == (step, cfg.to_dict()) \
        and "table" in previous and kept and all(map(os.path.isdir, kept.values())):
      _print(previous)
      return previous
  return run(workdir, task_cfg)


def glue(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """The GLUE-sane protocol: every GLUE task of finetune.task, the table and the average.

  Writes WORKDIR/finetune/glue.md and glue.json. The average is comparable to the paper's only
  when all eight tasks ran; otherwise it is labelled with the tasks it covers.
  """
  cfg = _settings(task_cfg)
  if len(set(curve.parse_sizes(cfg))) > 1:
    raise ConfigError(f"finetune.train_sizes={cfg.train_sizes!r}: --mode=glue scores one "
                      "training set per task; draw a label-budget curve with --mode=finetune")
  if not cfg.task.startswith(("glue:", "tfds:")):
    raise ConfigError(f"--mode=glue runs GLUE tasks: finetune.task={cfg.task!r} must be "
                      "'glue:DIR[:TASK,...]' or 'tfds:glue[/TASK,...]'")
  result = _run_all(workdir, cfg)
  present = sorted({r["task"] for r in result["rows"]})
  result["average"] = tables.glue_average(result["rows"])
  result["complete"] = set(present) == set(labelled.glue.TASKS)
  label = ("GLUE average (8 tasks, MNLI m and mm counted apart)" if result["complete"] else
           f"average over {', '.join(present)} only: not a GLUE score")
  md = "\n".join([
      f"# GLUE dev scores of checkpoint step {result['checkpoint_step']}",
      "",
      f"Median of {cfg.seeds} fine-tuning seed(s) (min–max), in percent; epochs {cfg.epochs}, "
      f"batch {cfg.batch_size}, lr {cfg.lr}, warmup {cfg.warmup}, AdamW ({cfg.b1}, {cfg.b2}, "
      f"{cfg.eps}), max length {cfg.max_len or 'of the model'}.",
      "",
      tables.table(result["rows"], percent=True),
      "",
      f"{label}: " + ", ".join(f"{tables.HEADERS[m]} {100 * v:.1f}"
                               for m, v in result["average"].items()),
      ""])
  out = os.path.join(workdir, "finetune")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "glue.md"), "w") as f:
    f.write(md)
  with open(os.path.join(out, "glue.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(md, flush=True)
  return result
