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

from . import baselines, tables
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
  if cfg.seeds < 1 or cfg.epochs < 1:
    raise ConfigError(f"finetune.seeds={cfg.seeds} and finetune.epochs={cfg.epochs} must be "
                      ">= 1")
  return max_len


def run_task(task, tokenizer, model_config: ModelConfig, encoder_params, cfg, max_len: int):
  """Rows {task, metric, <model>: median, <model>_seeds: [...]} of one task, one per column."""
  train = task.train
  if 0 < cfg.max_train_examples < len(train):
    train = train.subset(np.sort(
        np.random.default_rng(0).permutation(len(train))[: cfg.max_train_examples]))
  if task.pair and max_len < 5:
    raise ConfigError(f"finetune.max_len={max_len} leaves no room for a pair: [CLS] a [SEP] b "
                      "[SEP] needs 5 tokens or more")
  tokens, mask, cut = classifier_lib.encode(tokenizer, train.text_a, max_len, train.text_b)
  arrays = (tokens, mask, train.labels)
  if cut:
    # Cut texts lose words the bag-of-words baseline still sees, so say how many.
    more = (f"finetune.max_len up to the model's {model_config.max_len} keeps more"
            if max_len < model_config.max_len else "the model takes no more")
    print(f"[finetune] {task.name}: {cut} of {len(train)} training examples "
          f"({100 * cut / len(train):.0f}%) are longer than finetune.max_len={max_len} tokens and "
          f"lose their ends; {more}", flush=True)
  devs = {name: classifier_lib.encode(tokenizer, s.text_a, max_len, s.text_b)[:2]
          for name, s in task.dev.items()}

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
  for seed in range(cfg.seeds):
    for name, (model, steps, params) in runs.items():
      steps = steps or runs["pretrained"][1]
      predictions = finetune_lib.finetune(model, steps, params, arrays, devs, cfg, seed)
      per_seed[name].append(tables.score(task, predictions))
      shown = ", ".join(f"{c} {v:.4f}" for c, v in per_seed[name][-1].items())
      print(f"[finetune] {task.name} seed {seed} {name}: {shown}", flush=True)
  medians = {name: tables.aggregate(s) for name, s in per_seed.items()}
  bow = tables.score(task, baselines.bag_of_words(task, train, cfg)) if cfg.baselines else None
  rows = []
  for split in task.dev:
    for m in task.metrics:
      c = column(split, m)
      row = dict(task=task.name, metric=c, in_average=c in task.headline)
      for name in runs:
        row[name], row[name + "_seeds"] = medians[name][0][c], medians[name][1][c]
      if bow is not None:
        row["bag_of_words"] = bow[c]
      row.update(train_examples=len(train), train_examples_cut=cut,
                 dev_examples=len(task.dev[split]))
      rows.append(row)
  return rows


def _settings(task_cfg) -> ml_collections.ConfigDict:
  cfg = default_config()
  cfg.lock()
  cfg.update(task_cfg or {})  # an unknown field is a KeyError, not a silent default
  return cfg


def _run_all(workdir: str, cfg) -> dict:
  start = time.time()
  task_list = labelled.load(cfg.task, cfg)
  saved = workdir_lib.pretrained(workdir)  # the params alone: no optimizer is built
  encoder_params, step = saved.params["encoder"], saved.step
  max_len = _check(cfg, saved.model.max_len)
  store = workdir_lib.token_store(saved.config, workdir)
  workdir_lib.check_tokenizer(workdir, store.tokenizer_path)
  tokenizer = store.tokenizer()
  model_config = cpu.tuned(dataclasses.replace(saved.model, dropout=cfg.dropout))
  rows = []
  for task in task_list:
    rows += run_task(task, tokenizer, model_config, encoder_params, cfg, max_len)
  for row in rows:
    metrics_log.write(workdir, {"kind": "finetune", "step": step, "checkpoint_step": step, **row})
  return dict(task=cfg.task, checkpoint_step=step, seeds=cfg.seeds, rows=rows,
              seconds=round(time.time() - start, 1), config=cfg.to_dict())


def run(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """Fine-tunes the latest checkpoint and the baselines on every task of finetune.task.

  Prints the table and writes it to WORKDIR/finetune.json and as "finetune" lines of
  metrics.jsonl (one per task and metric).
  """
  cfg = _settings(task_cfg)
  result = _run_all(workdir, cfg)
  result["table"] = tables.table(result["rows"])
  path = os.path.join(workdir, "finetune.json")
  with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
  os.replace(path + ".tmp", path)
  _print(result)
  return result


def _print(result):
  print(f"fine-tuned checkpoint step {result['checkpoint_step']} on {result['task']}; dev scores, "
        f"median of {result['seeds']} seed(s) (min–max):\n{result['table']}", flush=True)


def after_training(workdir: str, task_cfg: ml_collections.ConfigDict) -> dict:
  """run() once per checkpoint step and settings: rerunning a finished run's command prints the
  table it already made instead of fine-tuning again."""
  cfg = _settings(task_cfg)
  with checkpoint.Checkpoints(workdir, writer=False) as ckpts:
    step = ckpts.latest_step()
  path = os.path.join(workdir, "finetune.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if (previous.get("checkpoint_step"), previous.get("config")) == (step, cfg.to_dict()) \
        and "table" in previous:
      _print(previous)
      return previous
  return run(workdir, task_cfg)


def glue(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """The GLUE-sane protocol: every GLUE task of finetune.task, the table and the average.

  Writes WORKDIR/finetune/glue.md and glue.json. The average is comparable to the paper's only
  when all eight tasks ran; otherwise it is labelled with the tasks it covers.
  """
  cfg = _settings(task_cfg)
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
