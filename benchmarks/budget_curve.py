"""Pretraining budget against fine-tuned quality: one cram per budget, then the fine-tuning table.

  python benchmarks/budget_curve.py --config=configs/quick.py --minutes=10,30,60 \
      --out=workdirs/curve [--label=NAME] [--config.data.remove_stopwords=True ...]

For each budget M it runs the README's training command with --config.budget_hours=M/60 in
OUT/LABEL-M (resuming it if it stopped; a finished run is not redone), then `run.py
--mode=finetune` on it with the config's finetune settings, and prints one JSON object: per
budget, the steps and tokens trained, the held-out MLM result, and the fine-tuned scores. The
baselines (no pretraining, CNN, bag of words) do not depend on the budget, only on the data
settings (their tokenizer), so they are trained with the first budget only; later budgets are
compared with them. A budget whose finetune.json already matches its checkpoint is not redone, so
the same command run again (or with more budgets) only adds what is missing.

Budgets are wall-clock minutes of whatever CPUs the process may use: pin it (taskset -c 0 ...) to
measure per core, and keep the machine otherwise quiet.
"""

import json
import os
import subprocess
import sys

from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

config_flags.DEFINE_config_file("config", None, "Python config file.", lock_config=True)
flags.DEFINE_list("minutes", ["10", "30", "60"], "pretraining budgets, in minutes")
flags.DEFINE_string("out", "workdirs/curve", "parent directory of the runs' workdirs")
flags.DEFINE_string("label", "", "name of this setting in the workdir names (default: the "
                    "config file's name)")
flags.DEFINE_bool("baselines", True, "train the baselines with the first budget")
FLAGS = flags.FLAGS


def _overrides() -> list[str]:
  """The --config.* flags given to this script, passed on to run.py."""
  return [a for a in sys.argv[1:] if a.startswith("--config.")]


def _run(*args):
  cmd = [sys.executable, os.path.join(ROOT, "run.py"), *args]
  print("+", " ".join(cmd[1:]), file=sys.stderr, flush=True)
  subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)  # stdout: the JSON alone


def _one(minutes: float, workdir: str, baselines: bool) -> dict:
  from jaxbert.workdir import metrics
  config_file = FLAGS["config"].config_filename
  _run(f"--config={config_file}", f"--workdir={workdir}", *_overrides(),
       f"--config.budget_hours={minutes / 60}", "--config.finetune.after_training=False")
  records = metrics.read(workdir)
  last = [r for r in records if r["kind"] == "train"][-1]
  evaluation = [r for r in records if r["kind"] == "eval"][-1]
  path = os.path.join(workdir, "finetune.json")
  done = None
  if os.path.exists(path):
    with open(path) as f:
      done = json.load(f)
  if not (done and done["checkpoint_step"] == last["step"]
          and done["config"].get("baselines", True) == baselines):
    _run("--mode=finetune", f"--workdir={workdir}", f"--config={config_file}", *_overrides(),
         f"--config.finetune.baselines={baselines}")
    with open(path) as f:
      done = json.load(f)
  return {"minutes": minutes, "workdir": workdir, "steps": last["step"],
          "tokens": last["tokens"], "mlm_loss": evaluation["mlm_loss"],
          "mlm_accuracy": evaluation["mlm_accuracy"], "unigram_loss": evaluation["unigram_loss"],
          "finetune": done["rows"], "finetune_seconds": done["seconds"]}


def main(argv):
  del argv
  label = FLAGS.label or os.path.basename(FLAGS["config"].config_filename).split(".py")[0]
  budgets = sorted(float(m) for m in FLAGS.minutes)
  results = []
  for i, minutes in enumerate(budgets):
    workdir = os.path.join(FLAGS.out, f"{label}-{minutes:g}")
    results.append(_one(minutes, workdir, FLAGS.baselines and i == 0))
  base = results[0]["finetune"]
  for r in results:  # gains over the baselines of the first budget, task by task and metric
    for row, first in zip(r["finetune"], base):
      for name in ("no_pretraining", "bag_of_words", "cnn"):
        if name in first:
          row[f"gain_over_{name}"] = row["pretrained"] - first[name]
  print(json.dumps({"label": label, "config": FLAGS["config"].config_filename,
                    "overrides": _overrides(), "budgets": results}, indent=2))


if __name__ == "__main__":
  app.run(main)
