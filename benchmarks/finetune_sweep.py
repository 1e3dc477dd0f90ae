"""Fine-tuning settings against each other, pretrained and from random init, on one workdir.

  python benchmarks/finetune_sweep.py --workdir=workdirs/quick --config=configs/quick.py \
      --settings="pooling=first,lr=1e-4;pooling=mean,lr=1e-4;pooling=mean,lr=1e-3"

Each ;-separated setting overrides the config's finetune fields; for each, the workdir's latest
checkpoint and the same architecture from random init are fine-tuned on finetune.task (its first
task) over finetune.seeds seeds, and the median dev score of each is printed, one JSON line per
setting. This is how configs/quick.py's fine-tuning settings were chosen: one setting is fair to
pretraining only if the no-pretraining baseline, trained with it too, is shown beside it.
--starts=no_pretraining fine-tunes random init alone, e.g. beside a pretraining run of the same
shape, taking the architecture from a workdir trained for a few steps.
"""

import json
import statistics
import time

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Python config file (its finetune fields).")
flags.DEFINE_string("workdir", None, "A trained workdir.", required=True)
flags.DEFINE_string("settings", "", "Settings to compare: k=v,k=v;k=v,...")
flags.DEFINE_list("starts", ["pretrained", "no_pretraining"],
                  "which starting points to fine-tune: the workdir's checkpoint (pretrained), the "
                  "same architecture from random init (no_pretraining), or both")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  unknown = set(FLAGS.starts) - {"pretrained", "no_pretraining"}
  if unknown:
    raise app.UsageError(f"--starts: unknown {sorted(unknown)}; give pretrained, no_pretraining "
                         "or both")
  from jaxbert import cpu
  from jaxbert import workdir as workdir_lib
  from jaxbert.data import labelled as tasks_lib
  from jaxbert.model import ModelConfig
  from jaxbert.tasks import classifier, compare, finetune, tables

  saved = workdir_lib.pretrained(FLAGS.workdir)
  config, encoder, step = saved.config, saved.params["encoder"], saved.step
  tokenizer = workdir_lib.token_store(config, FLAGS.workdir).tokenizer()
  base = (FLAGS.config or config).finetune
  for setting in FLAGS.settings.split(";"):
    cfg = compare.default_config()
    cfg.update(base.to_dict())
    for kv in filter(None, setting.split(",")):
      key, value = kv.split("=", 1)
      old = cfg[key]
      cfg[key] = (value if isinstance(old, str) else value.lower() in ("1", "true")
                  if isinstance(old, bool) else type(old)(float(value)))
    task = tasks_lib.load(cfg.task, cfg)[0]
    max_len = cfg.max_len or config.model.max_len
    tokens, mask, _ = classifier.encode(tokenizer, task.train.text_a, max_len, task.train.text_b)
    train = (tokens, mask, task.train.labels)
    devs = {n: classifier.encode(tokenizer, s.text_a, max_len, s.text_b)[:2]
            for n, s in task.dev.items()}
    model = classifier.Classifier(
        cpu.tuned(ModelConfig.from_dict({**config.model.to_dict(), "dropout": cfg.dropout})),
        task.num_outputs, cfg.pooling)
    steps = finetune.trainer(model, cfg, len(task.train), task.regression)
    out = {"setting": setting, "task": task.name, "checkpoint_step": step,
           "score": tasks_lib.column(next(iter(task.dev)), task.metrics[0])}
    start = time.time()
    for name, params in (("pretrained", encoder), ("no_pretraining", None)):
      if name not in FLAGS.starts:
        continue
      per_seed = []
      for seed in range(cfg.seeds):
        outputs, _ = finetune.finetune(model, steps, params, train, devs, cfg, seed)
        per_seed.append(tables.score(task, {split: finetune.labels(o)
                                            for split, o in outputs.items()}))
      column = tasks_lib.column(next(iter(task.dev)), task.metrics[0])
      scores = [s[column] for s in per_seed]
      out[name], out[name + "_seeds"] = statistics.median(scores), scores
    out["seconds"] = round(time.time() - start, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
  app.run(main)
