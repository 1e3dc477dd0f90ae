"""Held-out points during training: they change nothing of the run, resume, and cost no budget;
and the side-by-side harness (benchmarks/speedrun.py) that compares recipes by them."""

import json
import os
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from jaxbert.pretrain import evaluate, loop
from jaxbert.pretrain import points as points_lib
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


def _config(**train):
  config = tiny.get_config()
  config.train.max_steps = 6
  for k, v in train.items():
    setattr(config.train, k, v)
  return config


def _kind(workdir, kind):
  return [r for r in metrics.read(workdir) if r["kind"] == kind]


def _losses(workdir):
  return [(r["step"], r["loss"], r["grad_norm"], r["param_norm"]) for r in _kind(workdir, "train")]


def test_points_change_nothing_and_resume_exactly(tmp_path):
  plain, points, resumed = (str(tmp_path / n) for n in ("plain", "points", "resumed"))
  loop.train_and_evaluate(_config(), plain)
  with_points = _config()
  with_points.eval.every_steps = 2
  loop.train_and_evaluate(with_points, points)
  # The same train losses, bit for bit, and the same final evaluation.
  assert _losses(points) == _losses(plain)
  assert _kind(points, "eval")[-1]["mlm_loss"] == _kind(plain, "eval")[-1]["mlm_loss"]
  evals = _kind(points, "eval")
  assert [r["step"] for r in evals] == [2, 4, 6]
  for r in evals:
    assert r["tokens"] > 0 and r["elapsed_s"] > 0 and np.isfinite(r["mlm_loss"])
  assert evals[0]["mlm_loss"] > evals[-1]["mlm_loss"]
  assert [r["eval_s"] > 0 for r in evals[:-1]] == [True, True]

  # Stopped after 3 steps (the schedule still spans 6), then continued: the same points.
  first = _config(stop_steps=3)
  first.eval.every_steps = 2
  loop.train_and_evaluate(first, resumed)
  assert [r["step"] for r in _kind(resumed, "eval")] == [2, 3]
  loop.train_and_evaluate(with_points, resumed)
  assert _losses(resumed) == _losses(points)
  got = {r["step"]: r["mlm_loss"] for r in _kind(resumed, "eval")}
  assert sorted(got) == [2, 3, 4, 6]
  assert all(got[r["step"]] == r["mlm_loss"] for r in evals)


def test_points_cost_no_budget(tmp_path, monkeypatch):
  """A held-out point that takes 2 s adds nothing to the budget clock the schedule reads."""
  score = evaluate.Heldout.__call__

  def slow(self, params):
    time.sleep(2.0)
    return score(self, params)

  monkeypatch.setattr(evaluate.Heldout, "__call__", slow)
  workdir = str(tmp_path / "run")
  config = _config()
  config.eval.every_steps = 2
  loop.train_and_evaluate(config, workdir)
  elapsed = {r["step"]: r["elapsed_s"] for r in _kind(workdir, "train")}
  for step in (2, 4):  # evaluated after these steps
    assert elapsed[step + 1] - elapsed[step] < 1.0
  evals = _kind(workdir, "eval")
  assert [r["eval_s"] >= 2.0 for r in evals[:-1]] == [True, True]


def test_minute_marks_survive_resume():
  """Points fall on multiples of eval.every_minutes of budget, from wherever a run resumes."""
  config = tiny.get_config().eval
  config.every_minutes, config.every_steps = 1.0, 0
  points = points_lib.Points(config, 150.0)  # resumed 2.5 minutes in: the next mark is at 3
  assert not points.due(1, 179.9) and points.due(1, 180.0)
  points.done(185.0)
  assert not points.due(2, 239.0) and points.due(2, 240.5)
  config.every_minutes, config.every_steps = 0.0, 5
  points = points_lib.Points(config, 0.0)
  assert [s for s in range(1, 16) if points.due(s, 1e9)] == [5, 10, 15]


def test_speedrun_harness_end_to_end(tmp_path, capsys):
  from benchmarks import speedrun

  out = str(tmp_path / "speedrun")
  args = ["--config=configs/tiny.py", f"--out={out}", "--arm=base",
          "--arm=lr optim.peak_lr=3e-3", "--seeds=1", "--budget_minutes=0.02",
          "--speed_steps=30", "--speed_repeats=1", "--speed_log_every=5", "--points=2"]
  result = speedrun.main(args)
  speed = result["speed"]
  # The lr arm does the same work per step, so it takes the base's measured speed.
  assert speed["lr"]["measured_as"] == "base"
  assert speed["lr"]["steps_per_s"] == speed["base"]["steps_per_s"] > 0
  steps = round(speed["base"]["steps_per_s"] * 0.02 * 60)
  for name in ("base", "lr"):
    (run,) = result["runs"][name]
    assert run["steps"] == steps and len(run["heldout"]) >= 2
    minutes = [h[0] for h in run["heldout"]]
    assert minutes == sorted(minutes) and abs(minutes[-1] - 0.02) < 1e-3
  rows = {r["arm"]: r for r in result["summary"]}
  assert rows["base"]["loss_at_budget"] != rows["lr"]["loss_at_budget"]
  with open(os.path.join(out, "speedrun.json")) as f:
    assert json.load(f)["summary"] == result["summary"]
  with open(os.path.join(out, "speedrun.md")) as f:
    table = f.read()
  assert "| base | (base) |" in table and "| lr | optim.peak_lr=3e-3 |" in table
  assert os.path.getsize(os.path.join(out, "speedrun.png")) > 0
  # Rerun: every run is found done, nothing trains again.
  again = speedrun.main(args)
  assert again["summary"] == result["summary"]
  # Asked for a shorter part (a second seed's first half, say), runs taken further are kept,
  # not started again.
  capsys.readouterr()
  part = speedrun.main(args + ["--stop_fraction=0.6"])
  assert capsys.readouterr().out.count("done before, kept") == 2
  for name in ("base", "lr"):  # and read to that part: the figures compare the same steps
    (run,) = part["runs"][name]
    assert 0 < run["steps"] <= round(steps * 0.6) and run["heldout"][-1][2] == run["steps"]
  # A call with fewer arms keeps the table of both aside instead of overwriting it.
  speedrun.main([a for a in args if not a.startswith("--arm=lr")])
  with open(os.path.join(out, "speedrun.1.json")) as f:
    assert [a["name"] for a in json.load(f)["arms"]] == ["base", "lr"]
  with open(os.path.join(out, "speedrun.json")) as f:
    assert [a["name"] for a in json.load(f)["arms"]] == ["base"]


@pytest.mark.slow
def test_evaluating_a_checkpoint_repeats_the_runs_record(tmp_path):
  """--mode=evaluate on a finished run writes the record the run wrote for its last step, where
  it stood included; with schedule-free AdamW both score the average, not the trained params."""
  workdir = str(tmp_path / "run")
  config = _config()
  config.optim.name, config.optim.schedule, config.optim.warmup = "schedule_free", "constant", 0.2
  loop.train_and_evaluate(config, workdir)
  ran = _kind(workdir, "eval")[-1]
  points_lib.checkpoint(workdir)
  again = _kind(workdir, "eval")[-1]
  assert again == ran and again["tokens"] > 0 and again["progress"] == 1.0
