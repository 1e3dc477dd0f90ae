"""End-to-end runs of the tiny config: train, checkpoint, resume, evaluate, refuse bad input."""

import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, run_py
from jaxbert import checkpoint, data
from jaxbert import workdir as workdir_lib
from jaxbert.pretrain import loop, microbatch, parallel
from jaxbert.pretrain import state as state_lib
from jaxbert.pretrain import step as step_lib
from jaxbert.workdir import metrics
from jaxbert import config as config_lib
from jaxbert.data import loader

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


def _train_records(workdir):
  return [r for r in metrics.read(workdir) if r["kind"] == "train"]


def test_tiny_run_writes_checkpoint_and_metrics(tmp_path):
  workdir = str(tmp_path / "run")
  results = loop.train_and_evaluate(tiny.get_config(), workdir)
  records = metrics.read(workdir)
  assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
  for r in _train_records(workdir):
    assert {"loss", "lr", "elapsed_s", "tokens_per_s", "accuracy", "grad_norm"} <= set(r)
    assert np.isfinite(r["loss"]) and r["tokens_per_s"] > 0
  evals = [r for r in records if r["kind"] == "eval"]
  assert len(evals) == 1 and evals[0]["step"] == 3
  assert evals[0]["mlm_loss"] == results["mlm_loss"] and np.isfinite(results["unigram_loss"])
  assert checkpoint.Checkpoints(workdir).steps() == [3]
  assert workdir_lib.read_config(workdir).model.hidden_size == 32

  # A second invocation with a larger step limit resumes at step 3 instead of starting over.
  config = tiny.get_config()
  config.train.max_steps = 5
  loop.train_and_evaluate(config, workdir)
  steps = [r["step"] for r in _train_records(workdir)]
  assert steps == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
  """kill -9 a run mid-way; the same command finishes it with the losses of an unbroken run."""
  args = ["--config=configs/tiny.py", "--config.train.max_steps=40",
          "--config.train.checkpoint_steps=1"]
  unbroken = str(tmp_path / "unbroken")
  run_py(*args, f"--workdir={unbroken}")

  broken = str(tmp_path / "broken")
  proc = subprocess.Popen([sys.executable, "run.py", *args, f"--workdir={broken}"], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt_dir = os.path.join(broken, "checkpoints")
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    steps = [int(s) for s in os.listdir(ckpt_dir) if s.isdigit()] if os.path.isdir(ckpt_dir) else []
    if steps and max(steps) >= 2:
      break
    time.sleep(0.02)
  assert proc.poll() is None, "the run ended before it could be interrupted"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  interrupted_at = max(r["step"] for r in _train_records(broken))
  assert interrupted_at < 40

  out = run_py(*args, f"--workdir={broken}").stdout
  assert "resuming" in out
  want, got = _train_records(unbroken), _train_records(broken)
  assert [r["step"] for r in got] == list(range(1, 41))
  assert [r["loss"] for r in got] == [r["loss"] for r in want]
  assert [r["lr"] for r in got] == [r["lr"] for r in want]
  eval_want = [r for r in metrics.read(unbroken) if r["kind"] == "eval"][-1]
  eval_got = [r for r in metrics.read(broken) if r["kind"] == "eval"][-1]
  assert eval_got["mlm_loss"] == eval_want["mlm_loss"]


@pytest.mark.slow
def test_evaluate_command_on_saved_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  run_py("--config=configs/tiny.py", f"--workdir={workdir}")
  out = run_py("--mode=evaluate", f"--workdir={workdir}").stdout
  assert "held-out MLM" in out and "unigram" in out
  evals = [r for r in metrics.read(workdir) if r["kind"] == "eval"]
  assert len(evals) == 2 and evals[0]["mlm_loss"] == evals[1]["mlm_loss"]
  bad = run_py("--mode=evaluate", f"--workdir={workdir}", "--step=99", check=False)
  assert bad.returncode != 0 and "99" in bad.stderr


@pytest.mark.slow
def test_day_config_runs_two_steps_with_size_overrides(tmp_path):
  out = run_py("--config=configs/day.py", f"--workdir={tmp_path / 'day'}",
               "--config.model.num_layers=1", "--config.model.hidden_size=32",
               "--config.model.num_heads=2", "--config.model.ffn_size=64",
               "--config.model.vocab_size=512", "--config.data.max_documents=40",
               "--config.data.max_token_char_ratio=0",
               "--config.train.batch_size=8",
               "--config.train.max_steps=2", "--config.train.log_every=1",
               "--config.eval.max_rows=32").stdout
  assert "step 2/2" in out
  assert [r["step"] for r in _train_records(str(tmp_path / "day"))] == [1, 2]
  # day.py leaves the micro-batch to the machine: here all 8 rows fit in one pass.
  assert "micro-batch: 8 rows, the most that fit" in out
  assert workdir_lib.read_config(str(tmp_path / "day")).train.micro_batch == 8


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_micro_batch_zero_takes_the_most_rows_whose_compiled_step_fits():
  config = tiny.get_config()
  config.train.micro_batch, config.train.device_memory_gb = 0, 1000.0
  config = config_lib.resolve(config)
  model, tx, init = state_lib.build(config)
  abstract, state_sharding, batch_sharding = loop.layout(config, init, parallel.make_mesh())
  step = step_lib.make_train_step(model, tx, config, (state_sharding, batch_sharding))

  def choose(batch_size, memory_gb):
    config.train.batch_size, config.train.device_memory_gb = batch_size, memory_gb
    return microbatch.choose(step, config, abstract, batch_sharding)

  assert choose(6, 1000.0)[0] == 2  # powers of two that divide the batch
  rows8, need8 = choose(8, 1000.0)
  rows16, need16 = choose(16, 1000.0)
  assert (rows8, rows16) == (8, 16) and need8 < need16  # activations grow with the rows
  between = (need8 + need16) / 2 / microbatch.MEMORY_HEADROOM / 2**30
  assert choose(16, between) == (8, need8)
  with pytest.raises(config_lib.ConfigError, match="does not fit: even a micro-batch of 1 rows"):
    choose(16, 1e-6)


def test_unknown_config_key_is_an_error_naming_it(tmp_path):
  proc = run_py("--config=configs/tiny.py", f"--workdir={tmp_path}",
                "--config.model.hiden_size=64", check=False)
  assert proc.returncode != 0 and "hiden_size" in proc.stderr
  assert not os.path.exists(tmp_path / "config.json")


@pytest.mark.slow
def test_incompatible_workdir_is_refused_naming_keys(tmp_path):
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(tiny.get_config(), workdir)
  config = tiny.get_config()
  config.model.hidden_size = 64
  config.model.vocab_size = 1024
  with pytest.raises(workdir_lib.IncompatibleCheckpoint,
                     match="model.vocab_size, model.hidden_size"):
    loop.train_and_evaluate(config, workdir)
  assert workdir_lib.read_config(workdir).model.hidden_size == 32  # nothing overwritten
  # Another optimizer's state is not in the checkpoint: refused by name, not as damage.
  config = tiny.get_config()
  config.optim.name = "sgd"
  with pytest.raises(workdir_lib.IncompatibleCheckpoint, match=r"another run: optim.name differs"):
    loop.train_and_evaluate(config, workdir)
  proc = run_py("--config=configs/tiny.py", "--config.model.arch=original", f"--workdir={workdir}",
                check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error: {workdir} holds a checkpoint of another run: model.arch differs")


@pytest.mark.slow
def test_accumulating_micro_batches_equals_one_big_batch():
  config = tiny.get_config()
  config.optim.name = "sgd"  # linear in the gradient: Adam's g/|g| would amplify rounding noise
  config = config_lib.resolve(config)
  store = data.prepare(config.data, config.model.vocab_size)
  model, tx, init = state_lib.build(config)
  it = iter(loader.pretraining_batches(store.train, seed=0, batch_size=8, mask_rate=0.25,
                                       vocab_size=config.model.vocab_size, threads=1))
  big = next(it)
  step = step_lib.make_train_step(model, tx, config)
  one = jax.tree.map(lambda x: x[None], big)
  two = jax.tree.map(lambda x: x.reshape((2, 4) + x.shape[1:]), big)
  s1, m1 = step(jax.jit(init)(state_lib.init_key(config)), one, np.float32(0.5))
  s2, m2 = step(jax.jit(init)(state_lib.init_key(config)), two, np.float32(0.5))
  np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-6)
  np.testing.assert_allclose(m1["grad_norm"], m2["grad_norm"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_sgd_with_nesterov_momentum_trains():
  """The momentum path: the MLM loss on a batch falls under repeated SGD steps, faster with
  momentum than without, and Nesterov's differs from heavy-ball's."""
  losses = {}
  for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
    config = tiny.get_config()
    config.optim.update(name="sgd", momentum=momentum, nesterov=nesterov, peak_lr=0.5,
                        schedule="constant", warmup=0.0, weight_decay=0.0)
    config = config_lib.resolve(config)
    store = data.prepare(config.data, config.model.vocab_size)
    model, tx, init = state_lib.build(config)
    batch = next(iter(loader.pretraining_batches(store.train, seed=0, batch_size=8,
                                                 mask_rate=0.25,
                                                 vocab_size=config.model.vocab_size, threads=1)))
    batch = jax.tree.map(lambda x: x[None], batch)
    step = step_lib.make_train_step(model, tx, config)
    s = jax.jit(init)(state_lib.init_key(config))
    curve = []
    for _ in range(12):
      s, m = step(s, batch, np.float32(0.5))
      curve.append(float(m["loss"]))
    losses[momentum, nesterov] = curve
  for curve in losses.values():
    assert curve[-1] < curve[0] - 0.5, curve
  assert losses[0.9, True][-1] < losses[0.0, False][-1]
  assert losses[0.9, True] != losses[0.9, False]


def test_batch_ramp_is_linear_in_progress_with_few_shapes():
  t = tiny.get_config().train
  t.micro_batch, t.batch_size, t.ramp_until, t.ramp_levels = 32, 8192, 0.6, 8
  levels = step_lib.accumulation_levels(t)
  assert levels[0] == 1 and levels[-1] == 256 and len(levels) == 8
  assert step_lib.accumulation(t, 0.0) == 1
  assert step_lib.accumulation(t, 0.6) == 256 and step_lib.accumulation(t, 1.0) == 256
  ramp = [step_lib.accumulation(t, x) for x in np.linspace(0, 0.6, 50)]
  assert ramp == sorted(ramp)
  for x in np.linspace(0, 0.6, 13):  # never more than one level below the linear target
    target = 1 + 255 * x / 0.6
    assert step_lib.accumulation(t, x) <= target + 1e-9
    assert target - step_lib.accumulation(t, x) <= max(np.diff(levels)) + 1e-9


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
  proc = run_py("--config=configs/tiny.py", "--config.optim.peak_lr=1e30",
                "--config.train.max_steps=6", f"--workdir={tmp_path / 'run'}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert re.fullmatch(r"error: loss \S+, param norm (nan|inf) at step \d; lower optim.peak_lr or "
                      r"raise optim.warmup; the workdir keeps no checkpoint",
                      proc.stderr.strip().splitlines()[-1])
  assert not checkpoint.has_checkpoint(str(tmp_path / "run"))  # no NaN params were saved


@pytest.mark.slow
def test_rerunning_a_finished_run_repeats_no_work(tmp_path):
  workdir = str(tmp_path / "run")
  first = loop.train_and_evaluate(tiny.get_config(), workdir)
  again = loop.train_and_evaluate(tiny.get_config(), workdir)
  assert again == first
  records = metrics.read(workdir)
  assert [(r["kind"], r["step"]) for r in records] == [
      ("start", 0), ("train", 1), ("train", 2), ("train", 3), ("eval", 3)]


def test_bad_setting_fails_cleanly_before_writing_anything(tmp_path):
  for override in ("--config.optim.schedule=triangle", "--config.budget_hours=0"):
    proc = run_py("--config=configs/tiny.py", f"--workdir={tmp_path / 'run'}", override,
                  check=False)
    key = override.split("=")[0].removeprefix("--config.")
    assert proc.returncode != 0 and key in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
  workdir = str(tmp_path / "run")
  args = ["--config=configs/tiny.py", f"--workdir={workdir}", "--config.train.max_steps=400"]
  proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while time.time() < deadline and len(_train_records(workdir)) < 3 and proc.poll() is None:
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err
  assert "rerun the same command to resume" in err and "Traceback" not in err
  stopped = _train_records(workdir)[-1]["step"]
  assert stopped < 400 and checkpoint.Checkpoints(workdir).steps()[-1] == stopped
  assert not [r for r in metrics.read(workdir) if r["kind"] == "eval"]

  out = run_py(*args).stdout
  assert f"resuming {workdir} at step {stopped}" in out
  assert [r["step"] for r in _train_records(workdir)] == list(range(1, 401))


def _slow_step(model, tx, config, shardings=None):
  """A train step of fixed device time (about 0.15 s on one core) that compiles in a blink and
  leaves the state as it is: the loop's timing is what is under test, not the update."""
  def step(state, batches, t):
    x = jax.lax.fori_loop(0, 30, lambda i, x: jnp.tanh(x @ x) * 0.5, jnp.full((512, 512), t))
    value = jnp.mean(x)
    names = ("loss", "accuracy", "lr", "grad_norm", "update_norm", "param_norm")
    return state.replace(step=state.step + 1), {name: value for name in names}
  return jax.jit(step, donate_argnums=(0,))


def test_budget_ends_the_run_within_a_few_steps_of_its_time(tmp_path, monkeypatch):
  # JAX returns from a step at once and queues it. A loop that let the host run ahead (about 35
  # steps on the CPU) would see the budget run out that many steps before the device did.
  monkeypatch.setattr(step_lib, "make_train_step", _slow_step)
  fn, state = _slow_step(None, None, None), state_lib.TrainState(jnp.zeros((), jnp.int32), {}, ())
  state, metrics = fn(state, None, np.float32(0.5))  # compiles; the step donates its state
  jax.block_until_ready(metrics)
  times = []
  for _ in range(5):
    start = time.perf_counter()
    state, metrics = fn(state, None, np.float32(0.5))
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  per_step = float(np.median(times))

  config = tiny.get_config()
  config.budget_hours = 8 / 3600  # initialising takes about 4 s of it
  t = config.train
  t.max_steps, t.micro_batch, t.batch_size, t.ramp_until, t.log_every = 0, 4, 4, 0.0, 10**6
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  (last,) = _train_records(workdir)  # logged once, at the last step, after syncing with it
  print(f"{last['step']} steps in {last['elapsed_s']:.2f} s; {per_step * 1e3:.0f} ms per step")
  assert last["step"] >= 10  # enough steps that the host could have run ahead
  assert 8 <= last["elapsed_s"] < 8 + 10 * per_step


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_a_rerun_reads_its_compiled_steps_from_the_cache(tmp_path):
  cache = tmp_path / "cache"
  env = {"JAXBERT_CACHE": str(cache)}
  args = ["--config=configs/tiny.py", f"--workdir={tmp_path / 'run'}"]
  run_py(*args, env=env)
  assert any(n.startswith("jit_step-") for n in os.listdir(cache / "xla"))
  # JAX says at debug level where each program came from.
  proc = run_py(*args, "--config.train.max_steps=4",
                env={**env, "JAX_DEBUG_LOG_MODULES": "jax._src.compiler"})
  assert "Persistent compilation cache hit for 'jit_step'" in proc.stderr


@pytest.mark.slow
def test_a_budget_that_would_repeat_the_corpus_too_often_stops_early(tmp_path):
  """A budget-bound run that would read its rows more than data.max_epochs times stops at its
  second train line with one line that says how many times and how to go on; 0 lifts the limit."""
  config = tiny.get_config()
  config.train.max_steps, config.data.max_epochs = 0, 16.0  # 15 minutes over 137k tokens
  with pytest.raises(config_lib.ConfigError, match=r"training tokens \d+ times "
                     r"\(data.max_epochs=16\).*data.max_epochs=0 to go on"):
    loop.train_and_evaluate(config, str(tmp_path / "stopped"))
  assert [r["step"] for r in metrics.read(str(tmp_path / "stopped")) if r["kind"] == "train"] == [1, 2]
  config.train.max_steps = 3  # step-bound: 3 steps read a fraction of the rows
  loop.train_and_evaluate(config, str(tmp_path / "short"))
