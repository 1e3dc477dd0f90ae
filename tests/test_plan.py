"""The plan of a run (jaxbert/plan): its figures against independent computations, its warnings,
plan.json, and that nothing else is written."""

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxbert import config as config_lib
from jaxbert import data
from jaxbert import plan as plan_lib
from jaxbert import progress
from jaxbert.plan import figures
from jaxbert.pretrain import state as state_lib
from jaxbert.pretrain import step as step_lib

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402

FIELDS = {"config", "machine", "workdir", "params", "flops_per_token", "predicted_per_row",
          "micro_batch", "memory", "gpu_compile", "ramp", "shapes", "throughput", "corpus",
          "run", "checkpoint", "warnings"}


def _plan(workdir, config=None, **kwargs) -> tuple[dict, str]:
  """(plan, the table it printed)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = plan_lib.plan(config or tiny.get_config(), str(workdir), **kwargs)
  return result, out.getvalue()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
  """The tiny config's plan with a measured burst: (plan, printed table, workdir)."""
  workdir = tmp_path_factory.mktemp("plan") / "run"
  result, printed = _plan(workdir)
  return result, printed, workdir


def test_plan_json_holds_the_returned_fields(measured):
  result, _, workdir = measured
  with open(workdir / "plan.json") as f:
    saved = json.load(f)
  assert set(saved) == FIELDS
  assert saved == json.loads(json.dumps(result))


def test_workdir_holds_only_plan_json(measured):
  _, _, workdir = measured
  assert os.listdir(workdir) == ["plan.json"]


def test_param_count_is_the_real_inits(measured):
  result, printed, _ = measured
  config = config_lib.resolve(tiny.get_config())
  _, _, init = state_lib.build(config)
  params = init(state_lib.init_key(config)).params
  total = sum(int(np.size(x)) for x in jax.tree.leaves(params))
  p = result["params"]
  assert p["total"] == total
  assert p["embeddings"] + p["encoder_layers"] + p["head"] == total
  assert p["embeddings"] == sum(int(np.size(x)) for x in
                                jax.tree.leaves(params["encoder"]["embeddings"]))
  assert f"{total:,}" in printed


def test_ramp_is_step_accumulation(measured):
  result, _, _ = measured
  config = tiny.get_config()
  tc = config.train
  grid = sorted({step_lib.accumulation(tc, t) for t in np.linspace(0, 1, 1001)})
  assert [level["micro_batches"] for level in result["ramp"]] == grid
  assert result["shapes"] == len(grid)
  assert result["ramp"][-1]["tokens_per_step"] == tc.batch_size * config.data.seq_len
  assert result["ramp"][0]["tokens_per_step"] == tc.micro_batch * config.data.seq_len
  # Step-bound: steps 0 and 1 of 3 (t = 0, 1/3) use one micro-batch, step 2 (t = 2/3) two.
  assert [level["steps"] for level in result["run"]["levels"]] == [
      sum(1 for k in range(tc.max_steps) if step_lib.accumulation(tc, k / tc.max_steps) == n)
      for n in grid]
  assert result["run"]["steps"] == tc.max_steps and result["run"]["ends_by"] == "max_steps"


def test_corpus_is_the_token_stores(measured):
  result, _, _ = measured
  config = tiny.get_config()
  store = data.prepare(config.data, config.model.vocab_size)
  rows, seq_len = store.train.shape
  assert result["corpus"]["rows"] == rows
  assert result["corpus"]["tokens"] == rows * seq_len
  assert result["corpus"]["counted_tokens"] == store.manifest["counts"]["train"]["tokens"]
  assert result["run"]["epochs"] == pytest.approx(result["run"]["rows"] / rows)


def test_measured_throughput_and_memory(measured):
  result, printed, _ = measured
  t, m = result["throughput"], result["memory"]
  assert t["source"] == "measured" and t["steps"] >= 3 and t["tokens_per_s"] > 0
  seq_len = tiny.get_config().data.seq_len
  assert t["tokens_per_s"] == pytest.approx(t["steps"] * t["rows"] * seq_len / t["seconds"])
  assert m["need_bytes"] == (m["argument_bytes"] + m["output_bytes"] - m["alias_bytes"]
                             + m["temp_bytes"]) > 0
  assert m["fits"] and "the CPU's figure, not a GPU estimate" in printed
  assert result["warnings"] == [] and "no warnings" in printed


def test_many_epochs_warns(tmp_path):
  config = tiny.get_config()
  config.budget_hours, config.train.max_steps = 24.0, 0
  result, printed = _plan(tmp_path, config, tokens_per_s=1e5)
  assert result["run"]["ends_by"] == "budget"
  # Budget-bound, one compile per level: the tokens are the budget's, less its compiles.
  spent = result["run"]["compile_s"] * len(result["run"]["levels"])
  expected = (24 * 3600 - spent) * 1e5 / result["corpus"]["tokens"]
  assert result["run"]["epochs"] == pytest.approx(expected, rel=1e-6)
  [warning] = [w for w in result["warnings"] if "corpus" in w]
  assert f"{result['run']['epochs']:.1f} times" in warning
  assert f"WARNING: {warning}" in printed
  assert plan_lib.warnings(result) == result["warnings"]


def test_epoch_warnings_follow_data_max_epochs(measured):
  """Past data.max_epochs the run stops itself; past MAX_EPOCHS, a warning unless the limit is 0
  (repeating chosen)."""
  result, _, _ = measured
  said = lambda epochs, limit: [w for w in plan_lib.warnings(
      {**result, "run": {**result["run"], "epochs": epochs},
       "config": {**result["config"], "max_epochs": limit}}) if "corpus" in w]
  assert "data.max_epochs=16" in said(20.0, 16)[0] and "stop" in said(20.0, 16)[0]
  assert "repeated tokens" in said(plan_lib.MAX_EPOCHS + 1, 16)[0]
  assert said(plan_lib.MAX_EPOCHS + 1, 0) == [] and said(20.0, 0) == []
  assert said(plan_lib.MAX_EPOCHS, 16) == []


def test_step_too_big_for_memory_warns(tmp_path):
  config = tiny.get_config()
  config.train.device_memory_gb = 1e-6  # about a kilobyte
  result, _ = _plan(tmp_path, config, tokens_per_s=1e5)
  assert not result["memory"]["fits"]
  assert any("does not fit" in w and "train.micro_batch=4" in w for w in result["warnings"])


def test_budget_too_short_for_the_ramp_warns(tmp_path):
  config = tiny.get_config()
  config.budget_hours, config.train.max_steps = 60 / 3600, 0
  result, _ = _plan(tmp_path, config, tokens_per_s=2.0)  # a step of 128 tokens takes 64 s
  assert result["run"]["steps"] < 1
  assert any("too short for the batch ramp" in w for w in result["warnings"])


def test_budget_ending_a_step_bound_run_warns(tmp_path):
  config = tiny.get_config()
  config.budget_hours, config.train.max_steps = 600 / 3600, 1_000_000
  result, _ = _plan(tmp_path, config, tokens_per_s=1000.0)  # 0.128 s a step of 128 tokens
  assert result["run"]["ends_by"] == "budget" and 0 < result["run"]["steps"] < 1_000_000
  assert result["run"]["seconds"] == pytest.approx(600, abs=0.2)
  assert any("train.max_steps=1,000,000" in w for w in result["warnings"])


def test_gpu_compile_without_the_plugin_says_how_to_get_it(tmp_path):
  """Without jax-cuda12-plugin (CI's case) the plan still runs and says what to install."""
  import importlib.util

  # find_spec of a submodule raises when its namespace package is absent, CI's case.
  if (importlib.util.find_spec("jax_plugins") is not None
      and importlib.util.find_spec("jax_plugins.xla_cuda12") is not None):
    pytest.skip("the plugin is installed here: the compile itself is tested in test_gpu_lowering")
  result, _ = _plan(tmp_path, device="h100", tokens_per_s=1e5)
  assert "pip install" in result["gpu_compile"]["error"]
  assert any("GPU compile for h100 failed" in w and "pip install" in w
             for w in result["warnings"])


def test_gpu_compile_sets_the_runs_micro_batch(tmp_path, monkeypatch):
  import jaxbert

  calls = []

  def compile_for(config, device):
    calls.append(device)
    return {"device": device, "memory_bytes": 3 * 2**30, "micro_batch": 8, "fits": True,
            "limit_bytes": 60 * 2**30}

  monkeypatch.delattr(jaxbert, "targets", raising=False)
  monkeypatch.setitem(sys.modules, "jaxbert.targets", types.SimpleNamespace(
      compile_for=compile_for))
  result, printed = _plan(tmp_path, device="h100", tokens_per_s=1e5)
  assert calls == ["h100"]
  assert result["gpu_compile"]["result"]["micro_batch"] == 8
  assert [level["micro_batches"] for level in result["ramp"]] == [1]  # 8 of 8 rows at once
  peak = progress.peak_flops("H100", "bfloat16")
  assert result["throughput"]["mfu"] == pytest.approx(1e5 * result["flops_per_token"] / peak)
  assert "3.00 GiB of 60.00 GiB" in printed and result["warnings"] == []


def test_rejects_a_bad_throughput(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="tokens_per_s=0"):
    plan_lib.plan(tiny.get_config(), str(tmp_path / "run"), tokens_per_s=0)
  assert not os.path.exists(tmp_path / "run")


def test_budget_bound_steps_without_ramp():
  """figures.run alone: no ramp, so steps are the budget less one compile over one step's time."""
  config = tiny.get_config()
  config.train.max_steps, config.train.ramp_until, config.budget_hours = 0, 0.0, 0.5
  run = figures.run(config, 4, tokens_per_s=640.0, compile_s=10.0, startup_s=5.0)
  step_s = 8 * 32 / 640.0  # the whole batch from the start: 2 micro-batches of 4 rows
  assert run["steps"] == math.floor((1800 - 10 - 5) / step_s)
  assert run["seconds"] == pytest.approx(1800) and run["ends_by"] == "budget"
  config.train.stop_steps = 100
  run = figures.run(config, 4, tokens_per_s=640.0, compile_s=10.0)
  assert run["steps"] == 100 and run["ends_by"] == "stop_steps"
  assert run["seconds"] == pytest.approx(10 + 100 * step_s)


def test_plan_mode_writes_the_plan_and_trains_nothing(tmp_path):
  """jaxbert plan (run.py --mode=plan): the table on stdout, plan.json, no checkpoint."""
  workdir = str(tmp_path / "planned")
  proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "jaxbert"), "plan",
                         "--config=configs/tiny.py", f"--workdir={workdir}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "parameters      31,105" in proc.stdout
  assert os.listdir(workdir) == ["plan.json"]
  with open(os.path.join(workdir, "plan.json")) as f:
    assert json.load(f)["params"]["total"] == 31105


def test_a_days_plan_on_a_cpu_warns_of_the_corpus_at_a_gpus_rate(tmp_path):
  """A CPU's rate plans a day badly: the tiny corpus for 24 hours reads well within its limit at
  this machine's speed for a slow enough CPU step, yet at an H100's assumed rate thousands of
  times; the plan says so, naming data.sources."""
  config = tiny.get_config()
  config.budget_hours, config.train.max_steps = 24.0, 0
  result = plan_lib.plan(config, str(tmp_path / "day"), tokens_per_s=1.0)  # a crawl here
  gpu = result["on_a_gpu"]
  assert gpu["tokens_per_s"] == pytest.approx(
      0.4 * progress.peak_flops("H100", "bfloat16") / result["flops_per_token"])
  assert gpu["epochs"] == pytest.approx(gpu["tokens_per_s"] * 24 * 3600
                                        / result["corpus"]["tokens"])
  assert [w for w in result["warnings"] if w.startswith("this plan's rate is this CPU's")
          and "data.sources" in w]
