"""jaxbert's command line: `jaxbert MODE --flag=value ...`, or `python run.py --mode=MODE ...`.

  jaxbert train --config=configs/quick.py --workdir=workdirs/quick     # cram (resumes if stopped)
  jaxbert train --workdir=workdirs/quick                               # resume with its config.json
  jaxbert evaluate --workdir=workdirs/quick [--step=N]                 # held-out MLM
  jaxbert report --workdir=workdirs/quick                              # report.md and curves.png
  jaxbert finetune --workdir=workdirs/quick                            # table; saves a classifier
  jaxbert predict --workdir=workdirs/quick --input=-                   # classify stdin's lines
  jaxbert embed --workdir=W --input=texts.txt --output=X.npy           # [rows, hidden]
  jaxbert evaluate --workdir=W --classifier=NAME --input=labelled.csv
  jaxbert glue --workdir=W --config=configs/glue.py --config.finetune.task=glue:DIR
  jaxbert prepare --config=configs/quick.py                            # build the token store only
  jaxbert lr_search --config=configs/quick.py --workdir=workdirs/lr-quick   # the best peak lr
  jaxbert export --workdir=workdirs/quick --out=DIR                    # in Hugging Face's layout
  jaxbert import --hf=DIR --workdir=workdirs/bert                      # a Hugging Face BERT

Flags, parsing, --help and the dispatch only: MODES (jaxbert/modes.py) is the one table of the
modes (name, help line, the flags each needs, the function that runs it), which `--help`, the
--mode flag, the checks and the dispatch all read.
"""

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxbert.modes import MODES, Mode

FLAGS = flags.FLAGS


config_flags.DEFINE_config_file("config", None, "Python config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config, metrics, checkpoints. "
                    "Default: workdirs/<config file name>.")
flags.DEFINE_enum("mode", "train", list(MODES), "What to do: a mode of those --help lists. The "
                  "command's first word may name it instead: jaxbert predict ...")
flags.DEFINE_integer("step", None, "evaluate, export: the checkpoint step (default: the latest).")
flags.DEFINE_string("device", None, "plan: a GPU to compile the step for as well, without one "
                    "(h100, h200, a100, a6000; needs pip install -e \".[gpu-plan]\").")
flags.DEFINE_float("tokens_per_s", None, "plan: the training throughput to plan with (default: "
                   "measured from a burst of steps here).")
flags.DEFINE_string("out", None, "export: the directory to write (created).")
flags.DEFINE_string("hf", None, "import: a Hugging Face BERT directory (config.json, "
                    "model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json).")
flags.DEFINE_string("classifier", None, "predict, embed, evaluate, export: a classifier saved "
                    "in --workdir/classifiers/ (predict: optional when it holds one; embed: "
                    "without it, the pretrained encoder, mean-pooled).")
flags.DEFINE_string("input", None, "predict, embed, evaluate: a .txt (one text a line), .csv, "
                    ".tsv or .jsonl file, or - for stdin.")
flags.DEFINE_string("output", None, "predict: a .jsonl file (default: stdout); embed: a .npy file.")
flags.DEFINE_string("text_column", None, "predict, embed, evaluate: the text's column or key "
                    "(default: the classifier's finetune.text_column).")
flags.DEFINE_string("input_format", "", "predict, embed, evaluate: txt, csv, tsv or jsonl, when "
                    "--input's name does not say (stdin is read as txt).")
flags.DEFINE_bool("overwrite", False, "predict, embed: replace an existing --output file.")
flags.DEFINE_string("coordinator", None, "Several processes (hosts): HOST:PORT of process 0, "
                    "with --num_processes and --process_id; the same command on every host.")
flags.DEFINE_integer("num_processes", None, "Several processes: how many.")
flags.DEFINE_integer("process_id", None, "Several processes: this one's index, 0 first.")


# -- The command line -----------------------------------------------------------------------------

HELP = ("--help", "-h", "-?", "--helpshort")


def usage() -> str:
  """--help: how to call it, one line per mode, then the flags."""
  width = max(map(len, MODES))
  return "\n".join([
      "usage: jaxbert MODE [--flag=value ...]   (or: python run.py --mode=MODE [--flag=value ...])",
      "",
      "modes (none given: train):",
      *(f"  {m.name:<{width}}  {m.help}" for m in MODES.values()),
      "",
      "flags (--config.KEY=VALUE overrides one field of --config; jaxbert/config/defaults.py "
      "lists them):",
      FLAGS.module_help(__name__),
      "",
      "Try --helpfull to get a list of all flags."])


def _parse(argv: list[str]) -> list[str]:
  """absl's flag parsing, with this module's --help: the modes, then the flags."""
  if any(arg in HELP for arg in argv[1:argv.index("--") if "--" in argv else len(argv)]):
    try:
      print(usage(), flush=True)
    except BrokenPipeError:  # jaxbert --help | head: the reader has what it wanted
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)  # as absl's own --help
  return app.parse_flags_with_usage(argv)


def chosen(args: list[str]) -> tuple[Mode, str]:
  """The mode and how messages name it: the first word left after the flags (jaxbert predict),
  unless --mode gives it (run.py's way; train when neither does)."""
  word = args[0] if args and not FLAGS["mode"].present and args[0] in MODES else None
  if word is None and args:
    hint = "" if FLAGS["mode"].present else f"; a mode is one of {', '.join(MODES)}"
    raise app.UsageError(f"unexpected arguments: {' '.join(args)}{hint}")
  if word is None:
    return MODES[FLAGS.mode], f"--mode={FLAGS.mode}"
  if args[1:]:
    raise app.UsageError(f"unexpected arguments: {' '.join(args[1:])}")
  return MODES[word], f"{os.path.basename(sys.argv[0])} {word}"


def _load_config():
  if FLAGS.config is not None:
    try:
      FLAGS.config.get("seed")  # a config file that failed to load raises only when first used
    except OSError as e:
      sys.exit(f"error: cannot load --config={FLAGS['config'].config_filename}: "
               f"{str(e).strip().splitlines()[-1].strip()}")


def _check_config():
  """Every field of --config in its allowed values, before any data or step: a bad value costs
  seconds, not the pretraining that comes before fine-tuning."""
  from jaxbert import config

  if FLAGS.config is not None:
    try:
      config.check(FLAGS.config)
    except config.ConfigError as e:
      sys.exit(f"error: {e}")


def _quiet_logs():
  if not FLAGS["verbosity"].present:  # library INFO lines (orbax, jax) drown the progress lines
    logging.set_verbosity(logging.WARNING)
    # A failed background save makes orbax log tracebacks from several threads; jaxbert reports
    # the failure itself in one line (see checkpoint.SaveFailed). --verbosity=0 shows them.
    logging.get_absl_logger().addFilter(
        lambda r: not (r.levelno >= std_logging.ERROR and f"{os.sep}orbax{os.sep}" in r.pathname))


def _join_processes():
  import jax

  # CPU-only hosts exchange gradients through gloo; GPUs use NCCL whatever this says.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
  if jax.process_index() > 0:  # one voice: the first process reports, the others only fail
    sys.stdout = open(os.devnull, "w")


def _failures() -> tuple:
  """What a mode reports as one line, "error: ...", with exit status 1."""
  from jaxbert import checkpoint, config
  from jaxbert import workdir as workdir_lib
  from jaxbert.pretrain import rollback

  return (OSError, config.ConfigError, workdir_lib.IncompatibleCheckpoint,
          checkpoint.DamagedCheckpoint, checkpoint.SaveFailed, workdir_lib.WorkdirError,
          rollback.NonFiniteLoss)


def _run(argv):
  mode, named = chosen(argv[1:])
  for need in mode.needs:
    if need.missing():
      raise app.UsageError(need.message.format(mode=named, name=mode.name))
  _load_config()
  _quiet_logs()
  from jaxbert import compile_cache
  from jaxbert.cpu import allocator

  # Before jax starts its backend; see allocator for why the training modes only.
  if mode.trains:
    allocator.keep_freed_memory()
  # Predicting compiles a dozen small programs (one per batch shape), each well under the 1 s
  # below which JAX would not keep it: kept, a second predict starts without compiling.
  compile_cache.enable(FLAGS.config.data.cache_dir if FLAGS.config is not None else "",
                       min_compile_seconds=0.0 if mode.on_input() else None)
  _check_config()
  if FLAGS.coordinator is not None:
    _join_processes()
  from jaxbert.pretrain import signals

  failures = _failures()
  try:
    mode.run(FLAGS)
  except failures as e:
    sys.exit(f"error: {e}")
  except signals.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


def main():
  """The `jaxbert` command, and run.py's."""
  app.run(_run, flags_parser=_parse)
