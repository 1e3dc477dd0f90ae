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

import json
import os

import ml_collections

from jaxbert import checkpoint, files
from jaxbert import config as config_lib
from jaxbert.config import ConfigError
from jaxbert.data import labelled

from . import all_tasks, curve, tables
# Also importable from here, where callers have always found them.
from .task_run import Kept, _keep, run_task  # noqa: F401


def default_config() -> ml_collections.ConfigDict:
  """The `finetune` part of the config tree (fields and comments in jaxbert/config/defaults.py)."""
  return config_lib.default().finetune


def _settings(task_cfg) -> ml_collections.ConfigDict:
  cfg = default_config()
  cfg.lock()
  cfg.update(task_cfg or {})  # an unknown field is a KeyError, not a silent default
  return cfg


def run(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """Fine-tunes the latest checkpoint and the baselines on every task of finetune.task.

  Prints the table and writes it to WORKDIR/finetune.json and as "finetune" lines of
  metrics.jsonl (one per task, metric and size). With several finetune.train_sizes, also the
  label-budget curve: printed, and WORKDIR/label_curve.json and label_curve.png (curve.py).
  """
  cfg = _settings(task_cfg)
  result = all_tasks.run(workdir, cfg)
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
  files.write_json(os.path.join(workdir, "finetune.json"), result)
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
  result = all_tasks.run(workdir, cfg)
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
  files.write_text(os.path.join(out, "glue.md"), md)
  files.write_json(os.path.join(out, "glue.json"), result)
  print(md, flush=True)
  return result
