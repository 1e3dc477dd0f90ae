"""Labelled sets for fine-tuning, read into one record whatever their source; the spec that names
them.

`finetune.task` is one of
  "sentiment"                  movie-review snippets shipped in the package (SOURCES.md here)
  "spam"                       SpamAssassin subject lines and message starts, also shipped
  "glue:DIR[:TASK,...]"        a GLUE directory in the standard layout (CoLA/, SST-2/, ...)
  "tfds:glue/sst2[,glue/...]"  TFDS GLUE configs already prepared in the TFDS data dir
  "file:PATH[,DEV_PATH]"       a user's CSV, TSV or JSONL file (columns: finetune.*_column)
  "A+B[+...]"                  several of the above as one task (records.merge): train sets
                               united, labels matched by name, dev scored per part and together

They are data, beside the pretraining corpus, rather than part of fine-tuning: pretraining may
read a task's texts too.
"""
from jaxbert import config as config_lib
from jaxbert.config import ConfigError

from . import glue, userfile
from .records import Split, Task, column, merge
from .shipped import EMBEDDED, EXAMPLES, embedded

__all__ = ["Split", "Task", "column", "merge", "EMBEDDED", "EXAMPLES", "embedded", "load", "glue",
           "userfile"]


def load(spec: str, cfg=None) -> list[Task]:
  """The tasks a `finetune.task` spec names; `cfg` is the `finetune` config (columns, dirs)."""
  if cfg is None:
    cfg = config_lib.default().finetune
  if "+" in spec:
    parts = [load(part, cfg) for part in spec.split("+")]
    if any(len(p) != 1 for p in parts):
      raise ConfigError(f"finetune.task={spec!r}: each part of a merged task must be one task "
                        "(a shipped one or file:...), not a GLUE or TFDS collection")
    return [merge([p[0] for p in parts])]
  kind, _, rest = spec.partition(":")
  if spec in EMBEDDED:
    return [embedded(spec)]
  if kind == "glue" and rest:
    directory, _, names = rest.partition(":")
    return glue.from_directory(directory, [n for n in names.split(",") if n])
  if kind == "tfds" and rest:
    return glue.from_tfds([n for n in rest.split(",") if n], cfg.tfds_data_dir)
  if kind == "file" and rest:
    train, _, dev = rest.partition(",")
    return [userfile.load(train, dev or None, cfg)]
  raise ConfigError(
      f"finetune.task={spec!r} is not a task; use one of {', '.join(map(repr, EMBEDDED))}, "
      "'glue:DIR[:TASK,...]', 'tfds:glue/sst2[,glue/...]' or 'file:PATH[,DEV_PATH]'")
