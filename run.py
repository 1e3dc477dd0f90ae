"""jaxbert's command line: flags only; the work happens in jaxbert.train and jaxbert.evaluate.

  python run.py --config=configs/quick.py --workdir=workdirs/quick     # cram (resumes if stopped)
  python run.py --mode=evaluate --workdir=workdirs/quick [--step=N]    # held-out MLM of a checkpoint
  python run.py --mode=export --workdir=workdirs/quick --out=DIR       # in Hugging Face's layout
"""

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Python config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config, metrics, checkpoints. "
                    "Default: workdirs/<config file name>.")
flags.DEFINE_enum("mode", "train", ["train", "evaluate", "finetune", "export"],
                  "train (or resume); evaluate a checkpoint of --workdir on the held-out rows; "
                  "finetune its latest checkpoint (settings: --config's finetune.*, else the "
                  "workdir's); or export a checkpoint to --out in Hugging Face's layout.")
flags.DEFINE_integer("step", None, "evaluate, export: the checkpoint step (default: the latest).")
flags.DEFINE_string("out", None, "export: the directory to write (created).")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.mode != "train" and FLAGS.workdir is None:
    raise app.UsageError(f"--mode={FLAGS.mode} needs --workdir")
  if FLAGS.mode == "export" and FLAGS.out is None:
    raise app.UsageError("--mode=export needs --out=DIR, the directory to write")
  if FLAGS.mode == "train" and FLAGS.config is None:
    raise app.UsageError("--config=FILE is required to train (see configs/)")
  if FLAGS.config is not None:
    try:
      FLAGS.config.get("seed")  # a config file that failed to load raises only when first used
    except OSError as e:
      sys.exit(f"error: cannot load --config={FLAGS['config'].config_filename}: "
               f"{str(e).strip().splitlines()[-1].strip()}")
  if not FLAGS["verbosity"].present:  # library INFO lines (orbax, jax) drown the progress lines
    logging.set_verbosity(logging.WARNING)
    # A failed background save makes orbax log tracebacks from several threads; jaxbert reports
    # the failure itself in one line (see checkpoint.SaveFailed). --verbosity=0 shows them.
    logging.get_absl_logger().addFilter(
        lambda r: not (r.levelno >= std_logging.ERROR and f"{os.sep}orbax{os.sep}" in r.pathname))
  from jaxbert import checkpoint, config, evaluate, finetune, train  # after flags: fast --help

  try:
    if FLAGS.mode == "evaluate":
      evaluate.evaluate_checkpoint(FLAGS.workdir, FLAGS.step)
    elif FLAGS.mode == "finetune":
      settings = FLAGS.config or checkpoint.read_config(FLAGS.workdir)
      finetune.run(FLAGS.workdir, settings.get("finetune"))
    elif FLAGS.mode == "export":
      from jaxbert import hf
      print(hf.export(FLAGS.workdir, FLAGS.out, FLAGS.step), flush=True)
    else:
      config_name = os.path.basename(FLAGS["config"].config_filename).split(".py")[0]
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir or os.path.join("workdirs", config_name))
  except (OSError, config.ConfigError, checkpoint.IncompatibleCheckpoint,
          checkpoint.DamagedCheckpoint, checkpoint.WorkdirError, train.NonFiniteLoss) as e:
    sys.exit(f"error: {e}")
  except train.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  app.run(main)
