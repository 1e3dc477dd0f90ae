"""Continued pretraining (config init_from): a new run starts from another workdir's latest params
and tokenizer, with its own optimizer, budget and data; refused cleanly when that cannot work."""

import json
import os
import random
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, run_py
from jaxbert import config as config_lib
from jaxbert import optim
from jaxbert import workdir as workdir_lib
from jaxbert.pretrain import loop
from jaxbert.pretrain import step as step_lib
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402

WORDS = ("the whale ship sea captain harpoon deck sail wind wave boat crew night storm island "
         "water light dark long old young great small white black cold deep far near").split()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A tiny run of 3 steps on the embedded corpus: the workdir the tests continue from."""
  workdir = str(tmp_path_factory.mktemp("continue") / "source")
  loop.train_and_evaluate(tiny.get_config(), workdir)
  return workdir


@pytest.fixture(scope="module")
def domain_text(tmp_path_factory):
  """Other data: 300 short documents, of which a hash sends about 9 to the held-out split."""
  rng = random.Random(0)
  path = tmp_path_factory.mktemp("domain") / "domain.txt"
  path.write_text("\n\n".join(" ".join(rng.choice(WORDS) for _ in range(40)) + "."
                              for _ in range(300)) + "\n")
  return f"text:{path}"


def _continued(source, sources, max_steps=3):
  config = tiny.get_config()
  config.init_from, config.data.sources, config.train.max_steps = source, sources, max_steps
  return config


def _first_states(monkeypatch):
  """The (step, params, optimizer state) each train step built from now on is first called with,
  as host arrays: what the run starts its first step from."""
  seen, real = [], step_lib.make_train_step

  def spy(*args, **kwargs):
    step = real(*args, **kwargs)

    def first(state, batches, t):
      if not seen:
        seen.append(jax.device_get((state.step, state.params, state.opt_state)))
      return step(state, batches, t)
    return first

  monkeypatch.setattr(step_lib, "make_train_step", spy)
  return seen


def test_continued_run_starts_from_the_source_params_and_resumes_on_its_own(
    tmp_path, monkeypatch, source, domain_text):
  workdir = str(tmp_path / "continued")
  seen = _first_states(monkeypatch)
  loop.train_and_evaluate(_continued(source, domain_text), workdir)
  (step, params, opt_state), = seen
  assert int(step) == 0
  want = workdir_lib.pretrained(source).params  # step 3 of the source
  assert jax.tree.structure(params) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
  fresh = optim.make(tiny.get_config().optim).init(want)  # zero moments and count, the peak lr
  assert jax.tree.structure(opt_state) == jax.tree.structure(fresh)
  for a, b in zip(jax.tree.leaves(opt_state), jax.tree.leaves(fresh)):
    np.testing.assert_array_equal(a, b)
  with open(os.path.join(workdir, "tokenizer.json"), "rb") as f, \
       open(os.path.join(source, "tokenizer.json"), "rb") as g:
    assert f.read() == g.read()
  start = metrics.read(workdir)[0]
  assert (start["kind"], start["init_from"], start["init_step"]) == (
      "start", os.path.abspath(source), 3)
  saved = workdir_lib.read_config(workdir)
  assert saved.init_from == source and saved.data.tokenizer == ""  # the workdir's own from now on
  assert [r["step"] for r in metrics.read(workdir) if r["kind"] == "train"] == [1, 2, 3]

  # The same command, with more steps, resumes the continued run: init_from is not read again,
  # even where it no longer exists.
  seen.clear()
  loop.train_and_evaluate(_continued(str(tmp_path / "gone"), domain_text, max_steps=5), workdir)
  assert int(seen[0][0]) == 3
  assert [r["step"] for r in metrics.read(workdir) if r["kind"] == "train"] == [1, 2, 3, 4, 5]


def test_bad_init_from_is_refused_in_one_line_before_writing(tmp_path, source, domain_text):
  workdir = tmp_path / "new"

  def refused(config, pattern):
    with pytest.raises(config_lib.ConfigError, match=pattern) as e:
      loop.train_and_evaluate(config, str(workdir))
    assert "\n" not in str(e.value)
    assert not workdir.exists()

  missing = str(tmp_path / "missing")
  refused(_continued(missing, domain_text), f"^init_from={missing}: no such directory")
  (tmp_path / "empty").mkdir()
  refused(_continued(str(tmp_path / "empty"), domain_text), "holds no config.json")
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  workdir_lib.write_config(str(untrained), tiny.get_config())
  refused(_continued(str(untrained), domain_text), "holds no checkpoint yet; train it first")
  config = _continued(source, domain_text)
  config.model.hidden_size = 64
  refused(config, f"^init_from={source} has model.hidden_size=32 but this config has 64; set "
                  "--config.model.hidden_size=32, the source's value")
  # A tokenizer other than the source's: the same vocabulary, other bytes.
  other = tmp_path / "other-tokenizer.json"
  with open(os.path.join(source, "tokenizer.json")) as f:
    other.write_text(json.dumps(json.load(f), indent=1))
  config = _continued(source, domain_text)
  config.data.tokenizer = str(other)
  refused(config, f"is not {source}/tokenizer.json, the tokenizer init_from={source} was "
                  "trained with; leave data.tokenizer empty")


def test_run_py_names_the_differing_model_key(tmp_path, source):
  proc = run_py("--config=configs/tiny.py", f"--config.init_from={source}",
                "--config.model.num_layers=3", f"--workdir={tmp_path / 'new'}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: init_from={source} has model.num_layers=2 but this config has 3; set "
      "--config.model.num_layers=2, the source's value: the run takes over its params and "
      "tokenizer")


def test_task_adaptive_run_on_task_text_alone_ends_without_held_out_mlm(tmp_path, source, capsys):
  """A task: source holds no rows out (its dev rows stay unseen), so the held-out evaluation is
  left to fine-tuning instead of failing the run at its end."""
  workdir = str(tmp_path / "tapt")
  assert loop.train_and_evaluate(_continued(source, "task:sentiment", max_steps=1), workdir) == {}
  out = capsys.readouterr().out
  assert "no held-out MLM: data.sources='task:sentiment' holds no rows out" in out
  assert [r["kind"] for r in metrics.read(workdir)] == ["start", "train"]
