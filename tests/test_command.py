"""The command line: the `jaxbert` command and run.py read one table of modes, and a config with a
field outside its allowed values fails in seconds, before any data is prepared or step taken."""

import os
import subprocess
import sys
import time

import ml_collections
import pytest

from conftest import ROOT
from jaxbert import cli
from jaxbert import config as config_lib

sys.path.insert(0, ROOT)
from configs import bert_original, day, glue, quick, tiny  # noqa: E402

# What `pip install -e .` makes of [project.scripts], beside this interpreter.
JAXBERT = os.path.join(os.path.dirname(sys.executable), "jaxbert")
ENTRY_POINTS = {"run.py": [sys.executable, "run.py"], "jaxbert": [JAXBERT]}


def _command(entry: str, mode: str, *args) -> list[str]:
  """`python run.py --mode=MODE ARGS`, or `jaxbert MODE ARGS`."""
  assert os.path.exists(JAXBERT), "no jaxbert command: pip install -e . --no-deps makes it"
  word = f"--mode={mode}" if entry == "run.py" else mode
  return [*ENTRY_POINTS[entry], word, *args]


def _run(command, env=None, timeout=300):
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, **(env or {})})


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_help_lists_every_mode_with_its_line(entry):
  proc = _run([*ENTRY_POINTS[entry], "--help"])
  assert proc.returncode == 1  # as absl's own --help
  lines = proc.stdout.splitlines()
  start = lines.index("modes (none given: train):") + 1
  listed = lines[start:lines.index("", start)]
  width = max(map(len, cli.MODES))
  assert listed == [f"  {m.name:<{width}}  {m.help}" for m in cli.MODES.values()]
  assert {line.split()[0] for line in listed} == {
      "train", "plan", "prepare", "lr_search", "evaluate", "report", "finetune", "glue", "predict",
      "embed", "export", "import"}
  assert "--config.KEY=VALUE" in proc.stdout and "  --workdir:" in proc.stdout


@pytest.mark.parametrize("entry,mode,args,named,needs", [
    ("run.py", "export", ["--workdir=W"], "--mode=export", "--out=DIR, the directory to write"),
    ("jaxbert", "export", ["--workdir=W"], "jaxbert export", "--out=DIR, the directory to write"),
    ("jaxbert", "predict", [], "jaxbert predict", "--workdir"),
    ("jaxbert", "evaluate", ["--workdir=W", "--classifier=C"], "jaxbert evaluate",
     "--input=FILE (or - for stdin)"),
    ("run.py", "import", ["--workdir=W"], "--mode=import",
     "--hf=DIR, the Hugging Face directory to read"),
])
def test_a_missing_flag_is_named_before_anything_runs(entry, mode, args, named, needs):
  proc = _run(_command(entry, mode, *args))
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == f"{named} needs {needs}"


def test_a_stray_word_is_refused_naming_the_modes():
  proc = _run([JAXBERT, "trian", "--config=configs/tiny.py"])
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      "unexpected arguments: trian; a mode is one of " + ", ".join(cli.MODES))
  proc = _run([sys.executable, "run.py", "--mode=report", "--workdir=W", "extra"])
  assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
      "unexpected arguments: extra")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_bad_finetune_setting_fails_in_seconds_before_any_data(entry, tmp_path):
  """configs/quick.py fine-tunes after 10 minutes of pretraining: a bad finetune.* value must not
  wait for them."""
  cache, workdir = tmp_path / "cache", tmp_path / "run"
  start = time.monotonic()
  proc = _run(_command(entry, "train", "--config=configs/quick.py",
                       "--config.finetune.pooling=bogus", f"--workdir={workdir}"),
              env={"JAXBERT_CACHE": str(cache)}, timeout=120)
  seconds = time.monotonic() - start
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: finetune.pooling='bogus' must be one of 'first', 'mean'")
  assert seconds < 30, f"{seconds:.0f} s to refuse a setting"
  assert not workdir.exists()
  assert not cache.exists() or not os.listdir(cache)  # no token store, tokenizer or NLTK data


def test_a_real_mode_through_the_command(tmp_path):
  cache = tmp_path / "cache"
  proc = _run([JAXBERT, "prepare", "--config=configs/tiny.py"], env={"JAXBERT_CACHE": str(cache)})
  assert proc.returncode == 0, proc.stderr[-3000:]
  first, *rest = proc.stdout[proc.stdout.index("token store "):].splitlines()
  store = first.removeprefix("token store ")
  assert os.path.dirname(store) == str(cache / "stores") and os.path.isdir(store)
  assert any(line.startswith("  train: ") and " rows of 32 " in line for line in rest)


def _with(path: str, value) -> ml_collections.ConfigDict:
  config = tiny.get_config()
  *parents, key = path.split(".")
  node = config
  for name in parents:
    node = node[name]
  node[key] = value
  return config


@pytest.mark.parametrize("path,value,message", [
    ("finetune.pooling", "max", "finetune.pooling='max' must be one of 'first', 'mean'"),
    ("finetune.augment", "bert", "finetune.augment='bert' must be one of '', 'eda', 'mlm'"),
    ("finetune.dropout", 1.0, "finetune.dropout=1.0 must be in [0, 1)"),
    ("finetune.seeds", 0, "finetune.seeds=0 must be a whole number >= 1"),
    ("finetune.augment_rate", 0.0, "finetune.augment_rate=0.0 must be in (0, 1]: the fraction of "
     "an example's words each copy changes"),
    ("finetune.dev_fraction", 1.0, "finetune.dev_fraction=1.0 must be in (0, 1)"),
    ("finetune.train_sizes", "100,-3", "finetune.train_sizes='100,-3': sizes must be >= 0 (0 = "
     "all labels)"),
    ("model.arch", "gpt", "model.arch='gpt' must be one of 'crammed', 'original'"),
    ("model.attention", "flash", "model.attention='flash' must be one of 'auto', 'xla', 'cudnn'"),
    ("model.dtype", "float16", "model.dtype='float16' must be one of 'auto', 'float32', "
     "'bfloat16'"),
    ("data.pack", "words", "data.pack='words' must be one of 'stream', 'sentences'"),
    ("data.order", "random", "data.order='random' must be one of 'shuffle', 'curriculum'"),
    ("data.mask_rate", 0.0, "data.mask_rate=0.0 must be in (0, 1]"),
    ("optim.name", "lamb", "optim.name='lamb' must be one of 'adamw', 'adam', 'sgd', 'muon', "
     "'schedule_free'"),
    ("optim.schedule", "triangle", "optim.schedule='triangle' must be one of 'budget_triangle', "
     "'one_cycle', 'cosine', 'linear', 'wsd', 'constant'"),
    ("optim.warmup", 1.0, "optim.warmup=1.0 must be in [0, 1)"),
    ("train.on_nonfinite", "ignore", "train.on_nonfinite='ignore' must be one of 'stop', 'skip'"),
    ("train.micro_batch", -4, "train.micro_batch=-4 must be a whole number >= 0"),
    ("train.keep", 0, "train.keep=0 must be a whole number >= 1"),
    ("eval.mask_rate", 1.5, "eval.mask_rate=1.5 must be in (0, 1]"),
    ("budget_hours", 0.0, "budget_hours=0.0 must be > 0: the wall-clock budget in hours"),
])
def test_a_field_outside_its_values_is_refused_naming_them(path, value, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.check(_with(path, value))
  assert str(e.value) == message
  with pytest.raises(config_lib.ConfigError, match="^" + message.split("=")[0]):
    config_lib.resolve(_with(path, value))


def test_a_section_alone_is_checked_by_its_own_paths():
  cfg = tiny.get_config().finetune
  config_lib.check(cfg, "finetune")
  cfg.pooling = "cls"
  with pytest.raises(config_lib.ConfigError, match=r"^finetune.pooling='cls' must be one of"):
    config_lib.check(cfg, "finetune")


@pytest.mark.parametrize("module", [tiny, quick, day, glue, bert_original],
                         ids=lambda m: m.__name__)
def test_every_shipped_config_is_allowed(module):
  config_lib.check(module.get_config())


def test_every_checked_field_is_a_field_of_the_tree():
  tree = config_lib.default()
  for path in config_lib.FIELDS:
    node = tree
    for name in path.split("."):
      assert name in node, f"FIELDS names {path}, which the config tree lacks"
      node = node[name]


def test_fine_tuning_after_training_must_fit_the_model_it_trains():
  config = tiny.get_config()  # model.max_len 32
  config.finetune.max_len = 64
  config_lib.resolve(config)  # no fine-tuning after it: the run's own business ends at training
  config.finetune.after_training = True
  with pytest.raises(config_lib.ConfigError, match=r"^finetune.max_len=64 must be in \[3, "
                                                   r"model.max_len=32\]"):
    config_lib.resolve(config)
