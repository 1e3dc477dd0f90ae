"""jaxbert's command line: flags only; the work happens in jaxbert.pretrain, tasks and hf.

  python run.py --config=configs/quick.py --workdir=workdirs/quick     # cram (resumes if stopped)
  python run.py --workdir=workdirs/quick                               # resume with its config.json
  python run.py --mode=evaluate --workdir=workdirs/quick [--step=N]    # held-out MLM
  python run.py --mode=report --workdir=workdirs/quick                 # report.md and curves.png
  python run.py --mode=finetune --workdir=workdirs/quick               # table; saves a classifier
  python run.py --mode=predict --workdir=workdirs/quick --input=-      # classify stdin's lines
  python run.py --mode=embed --workdir=W --input=texts.txt --output=X.npy   # [rows, hidden]
  python run.py --mode=evaluate --workdir=W --classifier=NAME --input=labelled.csv
  python run.py --mode=glue --workdir=W --config=configs/glue.py --config.finetune.task=glue:DIR
  python run.py --mode=prepare --config=configs/quick.py               # build the token store only
  python run.py --mode=lr_search --config=configs/quick.py --workdir=workdirs/lr-quick  # best lr
  python run.py --mode=export --workdir=workdirs/quick --out=DIR       # in Hugging Face's layout
  python run.py --mode=import --hf=DIR --workdir=workdirs/bert         # a Hugging Face BERT
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
flags.DEFINE_enum("mode", "train",
                  ["train", "evaluate", "finetune", "glue", "report", "prepare", "export",
                   "import", "predict", "embed", "lr_search"],
                  "train (or resume); evaluate a checkpoint of --workdir on the held-out rows "
                  "(with --classifier: that classifier on --input, a labelled file); "
                  "finetune its latest checkpoint on finetune.task and save the classifier; "
                  "predict: label --input's texts with a saved classifier; embed: --input's "
                  "texts as vectors in --output.npy; glue: the GLUE-sane protocol "
                  "on every GLUE task of finetune.task (settings: --config's finetune.*, else the "
                  "workdir's); (re)make its report.md and curves.png; prepare --config's token "
                  "store (no workdir needed); export a checkpoint to --out in Hugging Face's "
                  "layout; or import --hf, a Hugging Face BERT directory, as a new --workdir "
                  "(data and fine-tuning settings from --config, if given); lr_search: a short "
                  "run of --config in --workdir/lr=VALUE for each optim.peak_lr of "
                  "lr_search.peak_lrs, then the table of their held-out MLM loss and the best.")
flags.DEFINE_integer("step", None, "evaluate, export: the checkpoint step (default: the latest).")
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
FLAGS = flags.FLAGS


def jax_process_index() -> int:
  import jax

  return jax.process_index()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.mode not in ("train", "prepare") and FLAGS.workdir is None:
    raise app.UsageError(f"--mode={FLAGS.mode} needs --workdir")
  if FLAGS.mode == "import" and FLAGS.hf is None:
    raise app.UsageError("--mode=import needs --hf=DIR, the Hugging Face directory to read")
  # A saved classifier (or encoder) run on --input: predict, embed, evaluate --classifier.
  on_input = FLAGS.mode in ("predict", "embed") or (FLAGS.mode == "evaluate" and FLAGS.classifier)
  if on_input:
    if FLAGS.input is None:
      raise app.UsageError(f"--mode={FLAGS.mode} needs --input=FILE (or - for stdin)")
  if FLAGS.mode == "export" and FLAGS.out is None:
    raise app.UsageError("--mode=export needs --out=DIR, the directory to write")
  resume_own = (FLAGS.mode == "train" and FLAGS.config is None and FLAGS.workdir is not None
                and os.path.exists(os.path.join(FLAGS.workdir, "config.json")))
  if FLAGS.mode in ("train", "prepare", "lr_search") and FLAGS.config is None and not resume_own:
    raise app.UsageError(f"--config=FILE is required to {FLAGS.mode} (see configs/), unless "
                         "--workdir holds a run to resume with its own config.json")
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
  from jaxbert import compile_cache
  from jaxbert.cpu import allocator

  # Before jax starts its backend; see allocator for why the training modes only.
  if FLAGS.mode in ("train", "lr_search"):
    allocator.keep_freed_memory()
  # Predicting compiles a dozen small programs (one per batch shape), each well under the 1 s
  # below which JAX would not keep it: kept, a second --mode=predict starts without compiling.
  compile_cache.enable(FLAGS.config.data.cache_dir if FLAGS.config is not None else "",
                       min_compile_seconds=0.0 if on_input else None)
  if FLAGS.coordinator is not None:
    import jax

    # CPU-only hosts exchange gradients through gloo; GPUs use NCCL whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    if jax.process_index() > 0:  # one voice: the first process reports, the others only fail
      sys.stdout = open(os.devnull, "w")
  # Imported here, after the flags: --help stays fast.
  from jaxbert import checkpoint, config, data
  from jaxbert import workdir as workdir_lib
  from jaxbert.pretrain import loop, points, rollback, signals
  from jaxbert.tasks import compare
  from jaxbert.workdir import report

  try:
    if on_input:
      from jaxbert.inference import commands

      common = dict(text_column=FLAGS.text_column, input_format=FLAGS.input_format)
      if FLAGS.mode == "evaluate":
        commands.evaluate(FLAGS.workdir, FLAGS.classifier, FLAGS.input, **common)
      else:
        if FLAGS.mode == "embed":
          common["step"] = FLAGS.step
        getattr(commands, FLAGS.mode)(FLAGS.workdir, FLAGS.classifier, FLAGS.input,
                                      FLAGS.output, overwrite=FLAGS.overwrite, **common)
    elif FLAGS.mode == "evaluate":
      points.checkpoint(FLAGS.workdir, FLAGS.step)
    elif FLAGS.mode == "report":
      print(f"report: {report.write(FLAGS.workdir)}")
    elif FLAGS.mode == "lr_search":
      from jaxbert.pretrain import lr_search

      lr_search.search(FLAGS.config, FLAGS.workdir)
    elif FLAGS.mode == "prepare":
      print(data.store.summary(data.prepare(FLAGS.config.data, FLAGS.config.model.vocab_size)))
    elif FLAGS.mode in ("finetune", "glue"):
      from jaxbert.inference import commands

      settings = FLAGS.config or workdir_lib.read_config(FLAGS.workdir)
      result = (compare.run if FLAGS.mode == "finetune" else compare.glue)(
          FLAGS.workdir, settings.get("finetune"))
      commands.show_use(FLAGS.workdir, result["classifiers"])
    elif FLAGS.mode == "export":
      from jaxbert import hf  # reads and writes safetensors with numpy: no torch needed

      if FLAGS.classifier:
        from jaxbert.inference import loaded

        directory = loaded.find(FLAGS.workdir, FLAGS.classifier)
        print(hf.export_classifier(directory, FLAGS.out), flush=True)
      else:
        print(hf.export(FLAGS.workdir, FLAGS.out, FLAGS.step), flush=True)
    elif FLAGS.mode == "import":
      from jaxbert import hf

      print(hf.import_workdir(FLAGS.hf, FLAGS.workdir, FLAGS.config or config.default()),
            flush=True)
    else:
      if resume_own:
        workdir, run_config = FLAGS.workdir, workdir_lib.read_config(FLAGS.workdir)
      else:
        config_name = os.path.basename(FLAGS["config"].config_filename).split(".py")[0]
        workdir, run_config = FLAGS.workdir or os.path.join("workdirs", config_name), FLAGS.config
      loop.train_and_evaluate(run_config, workdir)
      if run_config.finetune.after_training and jax_process_index() == 0:
        from jaxbert.inference import commands

        result = compare.after_training(workdir, run_config.finetune)
        print(f"report: {report.write(workdir)}")
        commands.show_use(workdir, result.get("classifiers", {}))
  except (OSError, config.ConfigError, workdir_lib.IncompatibleCheckpoint,
          checkpoint.DamagedCheckpoint, checkpoint.SaveFailed, workdir_lib.WorkdirError,
          rollback.NonFiniteLoss) as e:
    sys.exit(f"error: {e}")
  except signals.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(128 + e.signum)


if __name__ == "__main__":
  app.run(main)
