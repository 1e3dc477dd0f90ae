"""The config a run uses: checked, then filled in with what depends on the machine."""

import ml_collections

from jaxbert.config.checks import ConfigError, check, finetune_max_len


def compute_dtype() -> str:
  """model.dtype "auto": bfloat16 on GPU and TPU, float32 on CPU (params are float32 anyway)."""
  import jax  # here, not at the top: data-preparation worker processes import this module

  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks the config (every field, then the fields that bound each other) and fills in what
  depends on the machine ("auto" dtype)."""
  check(config)
  config = ml_collections.ConfigDict(config.to_dict())  # a copy we may edit
  if config.model.dtype == "auto":
    config.model.dtype = compute_dtype()
  t = config.train
  if t.micro_batch and t.batch_size % t.micro_batch:
    raise ConfigError(f"train.batch_size={t.batch_size} is not a multiple of "
                     f"train.micro_batch={t.micro_batch}")
  if config.data.seq_len > config.model.max_len:
    raise ConfigError(f"data.seq_len={config.data.seq_len} exceeds model.max_len="
                     f"{config.model.max_len}")
  if config.finetune.after_training:  # it fine-tunes the model this config trains
    finetune_max_len(config.finetune, config.model.max_len)
  return config
