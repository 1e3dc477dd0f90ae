"""A fine-tuned classifier on disk: WORKDIR/classifiers/NAME/, a directory that stands alone.

  classifier.json      what it is: task, labels (or "regression"), max_len, pooling, the model
                       config, the dev score of the seed kept, the fine-tuning settings, the
                       checkpoint step it started from and its tokenizer's sha256
  params.safetensors   its params (encoder and head), float32, named "encoder/layer_0/...", so any
                       safetensors reader opens them
  tokenizer.json       a copy of the tokenizer it was fine-tuned with
  dev_outputs.npz      what it gave on each dev split in fine-tuning: class probabilities
                       [rows, classes] (or values [rows]), to check a loaded copy against

A directory is written under a temporary name and renamed into place, so an interrupted save
leaves either the old classifier or the new one, never half of one.
"""
import dataclasses
import json
import os
import shutil

import numpy as np
import safetensors.numpy
from flax import traverse_util

from jaxbert import files
from jaxbert.config import ConfigError
from jaxbert.model import ModelConfig

FORMAT = 1  # classifier.json's "format": raised when a change makes old readers misread it
# finetune.* fields that change nothing in the pretrained classifier: its name, the baselines',
# when fine-tuning runs, how many dev rows are predicted at once, where TFDS keeps its files.
SETTINGS_IGNORED = ("name", "overwrite", "after_training", "baselines", "eval_batch_size",
                    "tfds_data_dir")
IGNORED_PREFIXES = ("bow_", "cnn_")


def directory(workdir: str, name: str) -> str:
  return os.path.join(workdir, "classifiers", name)


def names(workdir: str) -> list[str]:
  """The classifiers saved in a workdir, sorted."""
  root = os.path.join(workdir, "classifiers")
  if not os.path.isdir(root):
    return []
  return sorted(n for n in os.listdir(root)
                if os.path.isfile(os.path.join(root, n, "classifier.json")))


def settings_of(cfg) -> dict:
  """The fine-tuning settings that make a classifier what it is (not its name or overwrite)."""
  return {k: v for k, v in cfg.to_dict().items()
          if k not in SETTINGS_IGNORED and not k.startswith(IGNORED_PREFIXES)}


def model_fields(config: ModelConfig) -> dict:
  """The ModelConfig's fields without how this machine runs it (cpu_products, dtype)."""
  return {k: v for k, v in dataclasses.asdict(config).items()
          if k not in ("cpu_products", "dtype")}


def check_replace(workdir: str, name: str, meta: dict, overwrite: bool):
  """Refuses, before any fine-tuning, to replace a saved classifier made otherwise.

  The same settings from the same checkpoint make the same classifier (fine-tuning is seeded),
  so that is no loss; anything else needs finetune.overwrite=True or another finetune.name.
  """
  path = os.path.join(directory(workdir, name), "classifier.json")
  if overwrite or not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  ours, theirs = saved.get("finetune", {}), meta["finetune"]
  differing = [k for k in ("task", "checkpoint_step", "tokenizer_sha256")
               if saved.get(k) != meta.get(k)]
  differing += [f"finetune.{k}" for k in sorted(set(ours) | set(theirs))
                if ours.get(k) != theirs.get(k)]
  if differing:
    raise ConfigError(
        f"{os.path.dirname(path)} holds a classifier made otherwise ({', '.join(differing)} "
        f"differ); keep both with --config.finetune.name=OTHER_NAME, or replace it with "
        "--config.finetune.overwrite=True")


def write(path: str, params, meta: dict, tokenizer_path: str, dev_outputs: dict):
  """Saves a classifier directory at `path`, replacing what is there (check_replace first)."""
  with files.replacing_dir(path) as staging:
    flat = {k: np.asarray(v, np.float32, order="C")
            for k, v in traverse_util.flatten_dict(params, sep="/").items()}
    safetensors.numpy.save_file(flat, os.path.join(staging, "params.safetensors"))
    shutil.copyfile(tokenizer_path, os.path.join(staging, "tokenizer.json"))
    np.savez(os.path.join(staging, "dev_outputs.npz"), **dev_outputs)
    with open(os.path.join(staging, "classifier.json"), "w") as f:
      json.dump({"format": FORMAT, **meta}, f, indent=2)
      f.write("\n")


def read(path: str) -> tuple[dict, dict]:
  """(classifier.json, params) of a classifier directory, checked to belong together."""
  meta_path = os.path.join(path, "classifier.json")
  if not os.path.isfile(meta_path):
    raise FileNotFoundError(f"{path} is not a saved classifier: it has no classifier.json")
  with open(meta_path) as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT:
    raise ConfigError(f"{meta_path}: format {meta.get('format')!r}; this jaxbert reads format "
                      f"{FORMAT}: fine-tune it again with this version")
  tokenizer_path = os.path.join(path, "tokenizer.json")
  if not os.path.isfile(tokenizer_path) or files.sha256(tokenizer_path) != meta["tokenizer_sha256"]:
    raise ConfigError(f"{tokenizer_path} is missing or is not the tokenizer {path} was "
                      "fine-tuned with (its sha256 differs from classifier.json's); restore the "
                      "file or fine-tune again")
  flat = safetensors.numpy.load_file(os.path.join(path, "params.safetensors"))
  return meta, traverse_util.unflatten_dict(flat, sep="/")
