"""--mode=lr_search: one short run per peak learning rate from one token store, the table, the
JSON and the plot, the best as an override; a rerun reads the finished runs back."""

import json
import math
import os
import sys

import pytest

from conftest import ROOT, run_py
from jaxbert import checkpoint
from jaxbert import config as config_lib
from jaxbert import workdir as workdir_lib
from jaxbert.pretrain import lr_search, rollback
from jaxbert.pretrain import step as step_lib
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


def test_values_parse_from_a_string_or_a_list():
  assert lr_search.parse_values(" 1e-3, 5e-3,0.02") == [("1e-3", 1e-3), ("5e-3", 5e-3),
                                                         ("0.02", 0.02)]
  assert lr_search.parse_values([1e-3, 0.0025]) == [("0.001", 1e-3), ("0.0025", 0.0025)]


@pytest.mark.parametrize("values", ["", [], "1e-3,,2e-3", "1e-3,fast", "-1e-3", "0", "nan",
                                    "inf", "1e-3,0.001"])
def test_bad_values_are_one_line_naming_the_key(values):
  with pytest.raises(config_lib.ConfigError, match=r"^lr_search\.peak_lrs") as e:
    lr_search.parse_values(values)
  assert "\n" not in str(e.value)


def test_best_is_the_lowest_finite_loss_and_the_table_marks_it():
  rows = [{"value": "1e-3", "peak_lr": 1e-3, "steps": 9, "mlm_loss": 4.2, "mlm_accuracy": 0.1},
          {"value": "5e-3", "peak_lr": 5e-3, "steps": 9, "mlm_loss": 3.9, "mlm_accuracy": 0.2},
          {"value": "1e-2", "peak_lr": 1e-2, "diverged": "loss nan", "mlm_loss": None}]
  top = lr_search.best(rows)
  assert top is rows[1] and lr_search.override(top) == "--config.optim.peak_lr=5e-3"
  lines = lr_search.table(rows, top).splitlines()
  assert lines[2].endswith("<- best") and "<- best" not in lines[1] + lines[3]
  assert "diverged" in lines[3]
  assert lr_search.best(rows[2:]) is None


def _config(values="1e-3,2e-2"):
  config = tiny.get_config()
  # max_steps ends each run (3 steps, the schedule keyed to them) long before its budget.
  config.lr_search.peak_lrs, config.lr_search.budget_minutes = values, 10.0
  config.train.ramp_until = 0.0  # one batch size: one train step to compile per rate
  return config


@pytest.mark.slow
def test_search_runs_each_value_then_reads_them_back(tmp_path, capsys, monkeypatch):
  workdir = str(tmp_path / "search")
  content = lr_search.search(_config(), workdir)
  out = capsys.readouterr().out.strip().splitlines()
  rows = content["rows"]
  assert [(r["value"], r["peak_lr"], r["steps"]) for r in rows] == [("1e-3", 1e-3, 3),
                                                                    ("2e-2", 2e-2, 3)]
  assert all(math.isfinite(r["mlm_loss"]) and 0 <= r["mlm_accuracy"] <= 1 for r in rows)
  top = min(rows, key=lambda r: r["mlm_loss"])
  assert [r["best"] for r in rows] == [r is top for r in rows]
  assert content["override"] == f"--config.optim.peak_lr={top['value']}"
  assert out[-1] == f"best: {content['override']} (held-out MLM loss {top['mlm_loss']:.3f})"
  with open(os.path.join(workdir, "lr_search.json")) as f:
    assert json.load(f) == content
  with open(os.path.join(workdir, "lr_search.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  for r in rows:  # each a workdir of its own, with its rate and the search's budget
    saved = workdir_lib.read_config(r["workdir"])
    assert r["workdir"] == os.path.join(workdir, f"lr={r['value']}")
    assert (saved.optim.peak_lr, saved.budget_hours) == (r["peak_lr"], 10.0 / 60)
  tokenizers = [open(os.path.join(r["workdir"], "tokenizer.json"), "rb").read() for r in rows]
  assert tokenizers[0] == tokenizers[1]  # one token store

  # Rerun: the finished runs are read back; no train step runs, nothing is recorded again.
  before = {r["workdir"]: (metrics.read(r["workdir"]), checkpoint.Checkpoints(
      r["workdir"], writer=False).steps()) for r in rows}
  stepped, real = [], step_lib.make_train_step

  def spy(*args, **kwargs):
    step = real(*args, **kwargs)
    return lambda *a: stepped.append(1) or step(*a)

  monkeypatch.setattr(step_lib, "make_train_step", spy)
  again = lr_search.search(_config(), workdir)
  assert again == content and not stepped
  for r in rows:
    steps = checkpoint.Checkpoints(r["workdir"], writer=False).steps()
    assert (metrics.read(r["workdir"]), steps) == before[r["workdir"]]
  assert capsys.readouterr().out.strip().splitlines()[-1] == out[-1]


def test_a_search_on_task_text_alone_is_refused_before_any_run(tmp_path):
  config = _config()
  config.data.sources = "task:sentiment"
  with pytest.raises(config_lib.ConfigError, match=r"^data.sources='task:sentiment' holds no rows "
                                                   "out"):
    lr_search.search(config, str(tmp_path / "search"))
  assert not os.path.exists(tmp_path / "search")


@pytest.mark.slow
def test_run_py_refuses_a_bad_setting_before_any_run(tmp_path):
  proc = run_py("--mode=lr_search", "--config=configs/tiny.py",
                "--config.lr_search.budget_minutes=0", f"--workdir={tmp_path / 'search'}",
                check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: lr_search.budget_minutes=0.0 must be > 0: each run's budget")
  assert not os.path.exists(tmp_path / "search")
  # The rates themselves come from the command line too.
  proc = run_py("--mode=lr_search", "--config=configs/tiny.py",
                "--config.lr_search.peak_lrs=1e-3,fast", f"--workdir={tmp_path / 'search'}",
                check=False)
  assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(
      "error: lr_search.peak_lrs='1e-3,fast': 'fast' is not a positive number")
  assert not os.path.exists(tmp_path / "search")


def test_a_diverged_value_is_shown_and_the_best_is_of_the_rest(tmp_path, monkeypatch, capsys):
  """The orchestration alone, on runs faked by their metrics.jsonl: too high a rate is an answer
  (shown as diverged), not the end of the search; if every rate diverges, the search fails."""
  losses = {1e-3: 4.5, 3e-3: 4.1}

  def fake_run(config, workdir):
    rate = config.optim.peak_lr
    if rate not in losses:
      raise rollback.NonFiniteLoss("loss nan, param norm nan at step 2; lower optim.peak_lr")
    os.makedirs(workdir, exist_ok=True)
    metrics.write(workdir, {"kind": "train", "step": 7, "tokens": 700})
    record = {"mlm_loss": losses[rate], "mlm_accuracy": 0.1, "unigram_loss": 6.0}
    metrics.write(workdir, {"kind": "eval", "step": 7, **record})
    return record

  monkeypatch.setattr(lr_search.loop, "train_and_evaluate", fake_run)
  content = lr_search.search(_config("1e-3,3e-3,1e30"), str(tmp_path / "search"))
  out = capsys.readouterr().out
  assert [r.get("mlm_loss") for r in content["rows"]] == [4.5, 4.1, None]
  assert content["rows"][2]["diverged"].startswith("loss nan")
  assert content["best"] == "3e-3" and "diverged" in out
  assert out.strip().splitlines()[-1] == (
      "best: --config.optim.peak_lr=3e-3 (held-out MLM loss 4.100)")
  with pytest.raises(config_lib.ConfigError, match="^lr_search.peak_lrs='1e30,2e30': every run "
                                                   "diverged"):
    lr_search.search(_config("1e30,2e30"), str(tmp_path / "high"))
  with open(tmp_path / "high" / "lr_search.json") as f:
    assert json.load(f)["best"] is None
