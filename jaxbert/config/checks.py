"""What each field of the config tree may hold (FIELDS), the check of a tree against it, and the
error every refused setting raises."""

import dataclasses
import importlib

import ml_collections


class ConfigError(ValueError):
  """A setting that cannot work; the message names the key and what to do."""


# -- Allowed values --------------------------------------------------------------------------------
# Every field with a closed set of values or a range, checked as a config is loaded (`check`: the
# command line, `resolve`), so that a bad value fails in seconds rather than after the pretraining
# budget is spent. A closed set is the constant of the code that reads the field, imported only
# when checked: data-preparation worker processes import this module and must stay light.

DTYPES = ("auto", "float32", "bfloat16")  # model.dtype; "auto" is resolved by compute_dtype
ON_NONFINITE = ("stop", "skip")  # train.on_nonfinite (pretrain/rollback.py)


@dataclasses.dataclass(frozen=True)
class OneOf:
  """One of the values of the constant `name` of `module` (a tuple, or a dict's keys)."""
  module: str
  name: str

  def allowed(self) -> tuple:
    return tuple(getattr(importlib.import_module(self.module), self.name))

  def check(self, path: str, value, section=None):
    allowed = self.allowed()
    if value not in allowed:
      raise ConfigError(f"{path}={value!r} must be one of {', '.join(map(repr, allowed))}")


@dataclasses.dataclass(frozen=True)
class Range:
  """A number from `low` to `high` (None: no upper bound); an end is in the range unless open."""
  low: float
  high: float | None = None
  open_low: bool = False
  open_high: bool = False
  whole: bool = False  # a count: an int
  why: str = ""  # what the field is, said after the range

  def allowed(self) -> str:
    kind = "a whole number " if self.whole else ""
    if self.high is None:
      return f"{kind}{'>' if self.open_low else '>='} {self.low:g}"
    return (f"{kind}in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
            f"{')' if self.open_high else ']'}")

  def holds(self, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
      return False
    above = value > self.low if self.open_low else value >= self.low
    below = self.high is None or (value < self.high if self.open_high else value <= self.high)
    return above and below

  def check(self, path: str, value, section=None):
    if not self.holds(value):
      raise ConfigError(f"{path}={value!r} must be {self.allowed()}"
                        + (f": {self.why}" if self.why else ""))


@dataclasses.dataclass(frozen=True)
class ParsedBy:
  """A value the function `name` of `module` parses from the field's section; it raises the
  ConfigError, naming the field, of a value it cannot read."""
  module: str
  name: str

  def check(self, path: str, value, section=None):
    getattr(importlib.import_module(self.module), self.name)(section)


POSITIVE = Range(0, open_low=True)
NON_NEGATIVE = Range(0)  # where 0 means off, or the default the field's comment names
COUNT = Range(1, whole=True)
OPTIONAL_COUNT = Range(0, whole=True)  # 0: off, all, or the default the comment names
FRACTION = Range(0, 1, open_high=True)  # a share of something that leaves some of it (betas too)
RATE = Range(0, 1, open_low=True)  # a share that takes some of it at least

FIELDS = {
    "seed": OPTIONAL_COUNT,  # numpy's generators refuse negative seeds
    "budget_hours": Range(0, open_low=True, why="the wall-clock budget in hours"),
    "model.arch": OneOf("jaxbert.model", "ARCHS"),
    "model.vocab_size": COUNT,
    "model.num_layers": COUNT,
    "model.hidden_size": COUNT,
    "model.num_heads": COUNT,
    "model.ffn_size": COUNT,
    "model.max_len": COUNT,
    "model.layer_norm_eps": NON_NEGATIVE,
    "model.init_std": POSITIVE,
    "model.residual_init_std": NON_NEGATIVE,
    "model.embedding_init_std": NON_NEGATIVE,
    "model.position_init": NON_NEGATIVE,
    "model.dropout": FRACTION,
    "model.dtype": OneOf("jaxbert.config.checks", "DTYPES"),
    "model.attention": OneOf("jaxbert.model", "ATTENTION"),
    "data.seq_len": COUNT,
    "data.max_token_char_ratio": NON_NEGATIVE,
    "data.min_chars": OPTIONAL_COUNT,
    "data.max_documents": OPTIONAL_COUNT,
    "data.tokenizer_sample_mb": POSITIVE,
    "data.pack": OneOf("jaxbert.data.packing", "PACKS"),
    "data.order": OneOf("jaxbert.data.loader", "ORDERS"),
    "data.workers": OPTIONAL_COUNT,
    "data.mask_rate": RATE,
    "data.max_epochs": NON_NEGATIVE,
    "optim.name": OneOf("jaxbert.optim", "OPTIMIZERS"),
    "optim.schedule": OneOf("jaxbert.optim", "SCHEDULES"),
    "optim.peak_lr": POSITIVE,
    "optim.warmup": FRACTION,  # the schedules after it divide by 1 - warmup
    "optim.decay": RATE,  # wsd divides by it
    "optim.b1": FRACTION,
    "optim.b2": FRACTION,
    "optim.eps": NON_NEGATIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.momentum": FRACTION,
    "optim.clip_norm": NON_NEGATIVE,
    "train.micro_batch": OPTIONAL_COUNT,
    "train.device_memory_gb": NON_NEGATIVE,
    "train.batch_size": COUNT,
    "train.ramp_until": Range(0, 1),
    "train.ramp_levels": COUNT,
    "train.max_steps": OPTIONAL_COUNT,
    "train.stop_steps": OPTIONAL_COUNT,
    "train.log_every": COUNT,
    "train.checkpoint_minutes": POSITIVE,
    "train.checkpoint_steps": OPTIONAL_COUNT,
    "train.keep": COUNT,
    "train.loader_threads": COUNT,
    "train.on_nonfinite": OneOf("jaxbert.config.checks", "ON_NONFINITE"),
    "train.max_skips": OPTIONAL_COUNT,
    "train.peak_tflops": NON_NEGATIVE,
    "eval.batch_size": COUNT,
    "eval.max_rows": OPTIONAL_COUNT,
    "eval.mask_rate": RATE,
    "eval.every_minutes": NON_NEGATIVE,
    "eval.every_steps": OPTIONAL_COUNT,
    "eval.seed": OPTIONAL_COUNT,
    "finetune.dev_fraction": Range(0, 1, open_low=True, open_high=True),
    "finetune.epochs": COUNT,
    "finetune.batch_size": COUNT,
    "finetune.lr": POSITIVE,
    "finetune.warmup": FRACTION,
    "finetune.b1": FRACTION,
    "finetune.b2": FRACTION,
    "finetune.eps": NON_NEGATIVE,
    "finetune.weight_decay": NON_NEGATIVE,
    "finetune.dropout": FRACTION,
    "finetune.pooling": OneOf("jaxbert.tasks.classifier", "POOLINGS"),
    "finetune.max_len": OPTIONAL_COUNT,  # its upper bound is the model's: finetune_max_len
    "finetune.seeds": COUNT,
    "finetune.train_sizes": ParsedBy("jaxbert.tasks.curve", "parse_sizes"),
    "finetune.min_steps": OPTIONAL_COUNT,
    "finetune.augment": OneOf("jaxbert.tasks.augment", "METHODS"),
    "finetune.augment_copies": COUNT,
    "finetune.augment_rate": Range(0, 1, open_low=True,
                                   why="the fraction of an example's words each copy changes"),
    "finetune.layer_lr_decay": RATE,
    "finetune.reinit_layers": OPTIONAL_COUNT,
    "finetune.max_train_examples": OPTIONAL_COUNT,
    "finetune.eval_batch_size": COUNT,
    "finetune.bow_steps": COUNT,
    "finetune.bow_lr": POSITIVE,
    "finetune.bow_l2": NON_NEGATIVE,
    "finetune.cnn_lr": POSITIVE,
    "finetune.cnn_embed": COUNT,
    "finetune.cnn_filters": COUNT,
    "finetune.cnn_dropout": FRACTION,
}


def check_field(path: str, value, section=None):
  """Raises the one-line ConfigError of a `value` that FIELDS[path] does not allow (`section`:
  the part of the tree holding it, which a parsed field reads)."""
  FIELDS[path].check(path, value, section)


def check(config: ml_collections.ConfigDict, section: str = ""):
  """Refuses the first field of `config` outside its allowed values (FIELDS), in one line naming
  the field, its value and what it may be. `section` ("finetune"): `config` is that part of the
  tree alone. A field the tree lacks is left to the code that reads it."""
  prefix = f"{section}." if section else ""
  for path in FIELDS:
    if not path.startswith(prefix):
      continue
    *parents, key = path.removeprefix(prefix).split(".")
    node = config
    for name in parents:
      node = node.get(name)
      if node is None:
        break
    if node is not None and key in node:
      check_field(path, node[key], node)


def finetune_max_len(cfg: ml_collections.ConfigDict, model_max_len: int) -> int:
  """The tokens per fine-tuning example, finetune.max_len or the model's (0), which must fit in
  [3, model_max_len]: [CLS], a token and [SEP], within the positions the model knows."""
  max_len = cfg.max_len or model_max_len
  if not 3 <= max_len <= model_max_len:
    raise ConfigError(f"finetune.max_len={cfg.max_len} must be in [3, model.max_len="
                      f"{model_max_len}] of the checkpoint (0 = the model's)")
  return max_len
