"""Weights a workdir holds for others to read: its checkpoint's params without the optimizer
(evaluation, fine-tuning, export), an imported BERT's pooler, and what a run started from it
(config init_from) takes over."""

import os
import typing

import jax
import ml_collections
import numpy as np

from jaxbert import checkpoint, files
from jaxbert import config as config_lib
from jaxbert.config import ConfigError
from jaxbert.model import MaskedLM, ModelConfig

from .identity import read_config


class Pretrained(typing.NamedTuple):
  config: ml_collections.ConfigDict  # the workdir's, resolved for this machine
  model: ModelConfig  # of the checkpoint, computing in this machine's dtype
  params: dict  # MaskedLM's params
  step: int  # the checkpoint step
  meta: dict  # what the checkpoint recorded beside the state


def pretrained(workdir: str, step: int | None = None) -> Pretrained:
  """The params of a workdir's checkpoint (latest by default), read without the optimizer.

  The compute dtype is resolved for this machine, not the one that trained: params are float32
  whatever made them. Nothing in the workdir is written or moved.
  """
  config = read_config(workdir)
  config.model.dtype = "auto"
  config = config_lib.resolve(config)
  try:
    model_config = ModelConfig.from_dict(config.model)
  except ValueError as e:
    raise ConfigError(f"{workdir}/config.json: model: {e}") from e
  tokens = jax.ShapeDtypeStruct((1, config.data.seq_len), jax.numpy.int32)
  abstract = jax.eval_shape(lambda: MaskedLM(model_config).init(jax.random.key(0), tokens))
  with checkpoint.Checkpoints(workdir, writer=False) as ckpts:
    if ckpts.latest_step() is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint yet; train first")
    params, meta = ckpts.restore_params(step, abstract["params"])
  return Pretrained(config, model_config, params, int(meta["step"]), meta)


POOLER_FILE = "pooler.safetensors"  # an imported BERT's pooler, beside the checkpoint


def pooler(workdir: str) -> dict | None:
  """The BERT pooler an imported workdir keeps (hf.import_workdir writes it), {"kernel", "bias"}
  float32; None for a workdir that holds none (jaxbert's own pretraining trains no pooler)."""
  path = os.path.join(workdir, POOLER_FILE)
  if not os.path.exists(path):
    return None
  import safetensors.numpy  # only where a pooler was imported

  try:
    tensors = safetensors.numpy.load_file(path)
  except Exception as e:  # safetensors raises its own error, ValueError or TypeError
    tensors = {"unreadable": e}
  if set(tensors) != {"kernel", "bias"}:
    raise ConfigError(f"{path} is not a pooler's kernel and bias; remove it, or "
                                 "import the model again")
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


# --- continued pretraining: config init_from ----------------------------------------------------

# What a run started from init_from shares with it: the shape of the params it takes over, and
# data.lowercase, which says what the tokenizer it takes over does (an export writes it beside).
SOURCE_KEYS = (*(k for k in config_lib.RUN_KEYS if k.startswith("model.")), "data.lowercase")


class Source(typing.NamedTuple):
  """The workdir a run starts from (init_from): its latest params and its tokenizer."""
  path: str  # as init_from gives it
  step: int  # the checkpoint step the params come from
  params: dict  # MaskedLM's params, host arrays
  tokenizer: str  # its tokenizer.json, which this run must encode with


def source(config) -> Source:
  """Reads and checks config.init_from, a workdir of a jaxbert run or of --mode=import.

  ConfigError (one line, naming init_from) unless it holds a checkpoint, its model fields and
  data.lowercase equal the config's, and data.tokenizer is "" or its tokenizer.json. Nothing is
  written.
  """
  path = config.init_from
  if not os.path.isdir(path):
    raise ConfigError(f"init_from={path}: no such directory; give the workdir of a jaxbert run "
                      "(or of run.py --mode=import), or \"\" to start from random init")
  if not os.path.exists(os.path.join(path, "config.json")):
    raise ConfigError(f"init_from={path}: {path} holds no config.json, so no jaxbert run; give "
                      "the workdir of a run (or of run.py --mode=import)")
  if not checkpoint.has_checkpoint(path):
    raise ConfigError(f"init_from={path} holds no checkpoint yet; train it first (python run.py "
                      f"--workdir={path}), or start from random init with init_from=\"\"")
  theirs = read_config(path).to_dict()
  ours = config.to_dict()
  for key in SOURCE_KEYS:
    a, b = config_lib.dotted(theirs, key), config_lib.dotted(ours, key)
    if a != b:
      raise ConfigError(f"init_from={path} has {key}={a} but this config has {b}; set "
                        f"--config.{key}={a}, the source's value: the run takes over its params "
                        "and tokenizer")
  tokenizer = os.path.join(path, "tokenizer.json")
  if not os.path.isfile(tokenizer):
    raise ConfigError(f"init_from={path}: {tokenizer}, the tokenizer its checkpoints were trained "
                      "with, does not exist; give a workdir that keeps one")
  if config.data.tokenizer:
    from jaxbert.data import tokenizer as tokenizer_lib  # here: the data package loads NLTK

    given = tokenizer_lib.given(config.data.tokenizer, config.model.vocab_size)
    if not files.same_bytes(given, tokenizer):
      raise ConfigError(f"data.tokenizer={config.data.tokenizer!r} is not {tokenizer}, the "
                        f"tokenizer init_from={path} was trained with; leave data.tokenizer "
                        "empty to encode with it")
  try:
    saved = pretrained(path)
  except checkpoint.DamagedCheckpoint as e:
    raise checkpoint.DamagedCheckpoint(
        f"init_from={path}: its latest checkpoint cannot be restored ({checkpoint._reason(e)}); "
        f"resume or retrain {path}, or give another init_from") from e
  return Source(path, saved.step, jax.device_get(saved.params), tokenizer)
