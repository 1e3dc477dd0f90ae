"""The table of jaxbert's modes, MODES: each mode's name, help line, the flags it needs and the
function that runs it, which `--help`, the --mode flag, the checks and the dispatch (jaxbert/cli.py)
all read. The work itself happens in jaxbert.pretrain, tasks, inference and hf.
"""

import dataclasses
import os
import typing

from absl import flags

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Need:
  """A flag a mode cannot run without. `message` takes {mode} (as the command named it:
  --mode=predict, jaxbert predict) and {name}; `when` limits the need to some of the mode's uses."""
  flag: str
  message: str
  when: typing.Callable[[], bool] | None = None

  def applies(self) -> bool:
    return self.when is None or self.when()

  def missing(self) -> bool:
    return getattr(FLAGS, self.flag) is None and self.applies()


def _resumes() -> bool:
  """train without --config: the run in --workdir goes on with its own config.json."""
  return (FLAGS.config is None and FLAGS.workdir is not None
          and os.path.exists(os.path.join(FLAGS.workdir, "config.json")))


WORKDIR = Need("workdir", "{mode} needs --workdir")
HF = Need("hf", "{mode} needs --hf=DIR, the Hugging Face directory to read")
OUT = Need("out", "{mode} needs --out=DIR, the directory to write")
INPUT = Need("input", "{mode} needs --input=FILE (or - for stdin)")
LABELLED_INPUT = dataclasses.replace(INPUT, when=lambda: bool(FLAGS.classifier))
CONFIG = Need("config", "--config=FILE is required to {name} (see configs/), unless --workdir "
              "holds a run to resume with its own config.json")
CONFIG_OR_RUN = dataclasses.replace(CONFIG, when=lambda: not _resumes())


# -- What each mode runs (imports inside: --help stays fast) --------------------------------------

def _process_index() -> int:
  import jax

  return jax.process_index()


def _run(f):
  """(workdir, config) of train and plan: the run in --workdir with its own config.json, or
  --config in --workdir (default workdirs/CONFIG_NAME)."""
  from jaxbert import workdir as workdir_lib

  if _resumes():
    return f.workdir, workdir_lib.read_config(f.workdir)
  config_name = os.path.basename(f["config"].config_filename).split(".py")[0]
  return f.workdir or os.path.join("workdirs", config_name), f.config


def _train(f):
  from jaxbert.pretrain import loop

  workdir, run_config = _run(f)
  loop.train_and_evaluate(run_config, workdir)
  if run_config.finetune.after_training and _process_index() == 0:
    from jaxbert.inference import commands
    from jaxbert.tasks import compare
    from jaxbert.workdir import report

    result = compare.after_training(workdir, run_config.finetune)
    print(f"report: {report.write(workdir)}")
    commands.show_use(workdir, result.get("classifiers", {}))


def _plan(f):
  from jaxbert import plan

  workdir, run_config = _run(f)
  plan.plan(run_config, workdir, device=f.device, tokens_per_s=f.tokens_per_s)


def _prepare(f):
  from jaxbert import data

  print(data.store.summary(data.prepare(f.config.data, f.config.model.vocab_size)))


def _lr_search(f):
  from jaxbert.pretrain import lr_search

  lr_search.search(f.config, f.workdir)


def _reading(f) -> dict:
  """How predict, embed and evaluate --classifier read --input."""
  return dict(text_column=f.text_column, input_format=f.input_format)


def _evaluate(f):
  if f.classifier:
    from jaxbert.inference import commands

    commands.evaluate(f.workdir, f.classifier, f.input, **_reading(f))
  else:
    from jaxbert.pretrain import points

    points.checkpoint(f.workdir, f.step)


def _report(f):
  from jaxbert.workdir import report

  print(f"report: {report.write(f.workdir)}")


def _compare(f, protocol: str):
  """finetune or glue (compare.run, compare.glue): --config's finetune.*, else the workdir's."""
  from jaxbert import workdir as workdir_lib
  from jaxbert.inference import commands
  from jaxbert.tasks import compare

  settings = f.config or workdir_lib.read_config(f.workdir)
  result = getattr(compare, protocol)(f.workdir, settings.get("finetune"))
  commands.show_use(f.workdir, result["classifiers"])


def _predict(f):
  from jaxbert.inference import commands

  commands.predict(f.workdir, f.classifier, f.input, f.output, overwrite=f.overwrite,
                   **_reading(f))


def _embed(f):
  from jaxbert.inference import commands

  commands.embed(f.workdir, f.classifier, f.input, f.output, overwrite=f.overwrite, step=f.step,
                 **_reading(f))


def _export(f):
  from jaxbert import hf  # reads and writes safetensors with numpy: no torch needed

  if f.classifier:
    from jaxbert.inference import loaded

    print(hf.export_classifier(loaded.find(f.workdir, f.classifier), f.out), flush=True)
  else:
    print(hf.export(f.workdir, f.out, f.step), flush=True)


def _import(f):
  from jaxbert import config, hf

  print(hf.import_workdir(f.hf, f.workdir, f.config or config.default()), flush=True)


@dataclasses.dataclass(frozen=True)
class Mode:
  name: str
  help: str  # one line
  run: typing.Callable[[flags.FlagValues], None]
  needs: tuple[Need, ...] = ()  # checked in this order: the first missing one is the message
  trains: bool = False  # tunes the host's malloc for training (jaxbert/cpu/allocator.py)

  def on_input(self) -> bool:
    """Whether this use runs a saved classifier (or encoder) on --input: exactly when it needs
    --input."""
    return any(need.flag == "input" and need.applies() for need in self.needs)


MODES = {m.name: m for m in (
    Mode("train", "pretrain --config in --workdir; resume the run there (its config.json if no "
         "--config)", _train, (CONFIG_OR_RUN,), trains=True),
    Mode("plan", "what a run of --config would do, without training: size, memory, steps, epochs"
         " (--device: a GPU)", _plan, (CONFIG_OR_RUN,), trains=True),
    Mode("prepare", "build --config's token store only (no workdir needed)", _prepare, (CONFIG,)),
    Mode("lr_search", "short runs of --config in --workdir/lr=VALUE, one per lr_search.peak_lrs; "
         "the best", _lr_search, (WORKDIR, CONFIG), trains=True),
    Mode("evaluate", "held-out MLM of a checkpoint (--step); with --classifier, it on a labelled "
         "--input", _evaluate, (WORKDIR, LABELLED_INPUT)),
    Mode("report", "(re)make --workdir's report.md and curves.png", _report, (WORKDIR,)),
    Mode("finetune", "fine-tune the latest checkpoint on finetune.task (--config's, else its "
         "own); save it", lambda f: _compare(f, "run"), (WORKDIR,)),
    Mode("glue", "the GLUE-sane protocol on each GLUE task of finetune.task (settings: as "
         "finetune)", lambda f: _compare(f, "glue"), (WORKDIR,)),
    Mode("predict", "label --input's texts with a saved --classifier (--output: a .jsonl file)",
         _predict, (WORKDIR, INPUT)),
    Mode("embed", "--input's texts as vectors in --output, a .npy file (no --classifier: the "
         "encoder's)", _embed, (WORKDIR, INPUT)),
    Mode("export", "a checkpoint (or --classifier) to --out in Hugging Face's layout", _export,
         (WORKDIR, OUT)),
    Mode("import", "a Hugging Face BERT directory, --hf, as a new --workdir (settings: --config's)",
         _import, (WORKDIR, HF)),
)}
