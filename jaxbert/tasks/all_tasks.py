"""Every task of finetune.task, fine-tuned from a workdir's latest checkpoint (task_run.py), each
task's kept classifier saved (saved.py) and every row logged to metrics.jsonl: the result that
compare.py writes out."""

import dataclasses
import os
import time

import jax
import numpy as np

from jaxbert import config as config_lib
from jaxbert import cpu, files
from jaxbert import workdir as workdir_lib
from jaxbert.config import ConfigError
from jaxbert.data import labelled
from jaxbert.workdir import metrics as metrics_log

from . import augment, saved
from .task_run import Kept, run_task


def _check(cfg, model_max_len: int) -> int:
  """The tokens per example, once every finetune.* field is in its allowed values."""
  config_lib.check(cfg, "finetune")
  return config_lib.finetune_max_len(cfg, model_max_len)


def run(workdir: str, cfg) -> dict:
  """The result of fine-tuning every task of `cfg` (the finetune config): its rows,
  saved classifiers, checkpoint step, seconds and config."""
  start = time.time()
  task_list = labelled.load(cfg.task, cfg)
  pretrained = workdir_lib.pretrained(workdir)  # the params alone: no optimizer is built
  encoder_params, step = pretrained.params["encoder"], pretrained.step
  pooler = workdir_lib.pooler(workdir)  # an imported BERT's, else None
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
                               augmenter, pooler)
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
              tokenizer_sha256=files.sha256(tokenizer_path), finetune=saved.settings_of(cfg))


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

