"""Robustness: one run per workdir, damaged checkpoints, determinism, bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, run_py
from jaxbert import checkpoint
from jaxbert import workdir as workdir_lib
from jaxbert.data import loader
from jaxbert.pretrain import loop, rollback
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


def _losses(workdir):
  return [(r["step"], r["loss"]) for r in metrics.read(workdir) if r["kind"] == "train"]


def _damage(step_dir):
  """Truncates the largest file of a step's state, as a full disk or a killed copy would."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs]
  biggest = max(files, key=os.path.getsize)
  os.truncate(biggest, os.path.getsize(biggest) // 3)


@pytest.mark.slow
def test_a_held_workdir_is_refused_and_a_dead_holder_does_not_block(tmp_path):
  workdir = str(tmp_path / "run")
  with workdir_lib.Lock(workdir):
    with pytest.raises(workdir_lib.WorkdirError, match="in use"):  # even from the same process
      workdir_lib.Lock(workdir).__enter__()
    proc = run_py("--config=configs/tiny.py", f"--workdir={workdir}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert workdir in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    assert os.listdir(workdir) == [".lock"]  # the refused run wrote nothing
  assert open(os.path.join(workdir, ".lock")).read() == ""  # a clean release leaves no holder

  # A holder killed with -9 leaves its name in the file but not the lock: the next run takes it.
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from jaxbert import workdir; "
       "workdir.Lock(sys.argv[1]).__enter__(); print('held', flush=True); "
       "time.sleep(600)", workdir], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline() == "held\n"
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  proc = run_py("--config=configs/tiny.py", f"--workdir={workdir}")
  assert f"taking over {workdir}/.lock from pid {holder.pid}" in proc.stderr
  assert [s for s, _ in _losses(workdir)] == [1, 2, 3]


def _step_bound(max_steps):
  """Tiny, checkpointed every step; lr and batch independent of max_steps, so runs compare."""
  config = tiny.get_config()
  config.train.max_steps, config.train.checkpoint_steps, config.train.keep = max_steps, 1, 3
  config.optim.schedule, config.optim.warmup, config.train.ramp_until = "constant", 0.0, 0.0
  return config


@pytest.mark.slow
def test_damaged_latest_step_is_moved_aside_and_the_run_resumes_from_the_one_before(
    tmp_path, capsys):
  unbroken, broken = str(tmp_path / "unbroken"), str(tmp_path / "broken")
  loop.train_and_evaluate(_step_bound(6), unbroken)
  loop.train_and_evaluate(_step_bound(4), broken)
  assert checkpoint.Checkpoints(broken).steps() == [2, 3, 4]
  _damage(os.path.join(broken, "checkpoints", "4"))
  capsys.readouterr()

  loop.train_and_evaluate(_step_bound(6), broken)
  out, err = capsys.readouterr()
  assert "checkpoint step 4 is damaged (" in err and "resuming from step 3" in err
  assert f"resuming {broken} at step 3" in out
  assert os.path.isdir(os.path.join(broken, "checkpoints", "4.damaged"))  # kept, not deleted
  assert _losses(broken) == _losses(unbroken) and len(_losses(broken)) == 6
  assert checkpoint.Checkpoints(broken).steps() == [4, 5, 6]


@pytest.mark.slow
def test_no_restorable_step_is_an_error_that_moves_nothing(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny.get_config()
  config.train.checkpoint_steps = 1
  loop.train_and_evaluate(config, workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  assert checkpoint.Checkpoints(workdir).steps() == [2, 3]
  for step in ("2", "3"):
    _damage(os.path.join(ckpt_dir, step))
  with pytest.raises(checkpoint.DamagedCheckpoint, match="step 3: .*step 2: "):
    loop.train_and_evaluate(config, workdir)
  with workdir_lib.Lock(workdir):  # the exception released the lock
    pass
  proc = run_py("--config=configs/tiny.py", "--config.train.checkpoint_steps=1",
                f"--workdir={workdir}", check=False)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "error: no checkpoint step in" in proc.stderr
  assert sorted(os.listdir(ckpt_dir)) == ["2", "3"]
  # A reader reads the params alone, which the truncated file may not hold; with every file of
  # the state cut short, they cannot be read either.
  for d, _, names in os.walk(os.path.join(ckpt_dir, "3", "state")):
    for name in names:
      os.truncate(os.path.join(d, name), os.path.getsize(os.path.join(d, name)) // 3)
  proc = run_py("--mode=evaluate", f"--workdir={workdir}", check=False)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "checkpoint step 3" in proc.stderr and "cannot be restored" in proc.stderr
  assert sorted(os.listdir(ckpt_dir)) == ["2", "3"]  # a reader moves nothing


@pytest.mark.slow
def test_same_seed_same_losses_other_seed_other_losses(tmp_path):
  procs = [subprocess.Popen([sys.executable, "run.py", "--config=configs/tiny.py",
                            f"--workdir={tmp_path / name}"], cwd=ROOT, stdout=subprocess.DEVNULL)
           for name in "ab"]  # separate processes, at once: nothing shared but the files
  assert [p.wait(timeout=300) for p in procs] == [0, 0]
  config = tiny.get_config()
  config.seed = 1
  loop.train_and_evaluate(config, str(tmp_path / "c"))
  first, again, other = ([loss for _, loss in _losses(str(tmp_path / n))] for n in "abc")
  assert len(first) == 3 and first == again
  assert all(x != y for x, y in zip(first, other))


@pytest.mark.parametrize("args, cause", [
    (["--config=does/not/exist.py"], "does/not/exist.py"),
    (["--config=configs/tiny.py", "--config.train.max_steps=abc"], "max_steps"),
    (["--config=configs/tiny.py", "--config.data.max_token_char_ratio=0.01"],
     "max_token_char_ratio"),  # a corpus that is empty after filtering
    (["--config=configs/tiny.py", "--config.data.sources=text:does/not/exist/*.txt"],
     "does/not/exist/*.txt matches no file"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, cause):
  proc = run_py(*args, f"--workdir={tmp_path / 'run'}", check=False)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  # One line says it (progress lines of a store being built may come before it).
  verdicts = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "FATAL"))]
  assert len(verdicts) == 1 and cause in verdicts[0]
  assert not os.path.exists(tmp_path / "run")


def _without_root_privilege():
  """A command prefix under which permission bits bind, even for root: root without the
  capability to override them (CI and containers often run as root)."""
  if os.geteuid() != 0:
    return []
  if shutil.which("setpriv") is None:
    pytest.skip("running as root without setpriv: nothing would refuse a write")
  return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_read_only_workdirs_are_one_line_errors_that_change_nothing(tmp_path):
  def run(workdir):
    return subprocess.run([*_without_root_privilege(), sys.executable, "run.py",
                           "--config=configs/tiny.py", "--config.train.max_steps=3",
                           f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)

  parent = tmp_path / "readonly"
  parent.mkdir()
  existing = str(tmp_path / "existing")
  run_py("--config=configs/tiny.py", "--config.train.max_steps=2", f"--workdir={existing}")
  before = {name: os.path.getmtime(os.path.join(existing, name)) for name in os.listdir(existing)}
  for path in (parent, existing):
    os.chmod(path, 0o555)
  try:
    new, old = run(parent / "run"), run(existing)
  finally:
    for path in (parent, existing):
      os.chmod(path, 0o755)
  for proc, workdir in ((new, parent / "run"), (old, existing)):
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot write to the workdir {workdir}: ")
  assert not os.path.exists(parent / "run")
  assert {n: os.path.getmtime(os.path.join(existing, n)) for n in os.listdir(existing)} == before


def test_workdir_that_cannot_be_created_is_an_error_naming_it(tmp_path):
  (tmp_path / "file").write_text("")
  workdir = str(tmp_path / "file" / "run")  # under a file: refused even to root
  with pytest.raises(workdir_lib.WorkdirError, match=f"cannot write to the workdir {workdir}: "):
    loop.train_and_evaluate(tiny.get_config(), workdir)


def _params(workdir):
  return workdir_lib.pretrained(workdir).params


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_killed_during_a_step_a_save_and_the_evaluation_the_run_ends_bit_identical(tmp_path):
  """kill -9 at three chosen points; each time the same command carries on. One checkpoint kept,
  so the kill during a save also shows that the last good step outlives a half-written one."""
  args = ["--config=configs/tiny.py", "--config.train.max_steps=10",
          "--config.train.checkpoint_steps=1", "--config.train.keep=1"]
  unbroken, broken = str(tmp_path / "unbroken"), str(tmp_path / "broken")
  run_py(*args, f"--workdir={unbroken}")

  for fault in ("kill@step:4", "kill@save:7", "kill@eval:10"):
    proc = run_py(*args, f"--workdir={broken}", check=False, faults=fault)
    assert proc.returncode == -signal.SIGKILL, (fault, proc.stderr[-2000:])
    if fault == "kill@save:7":
      ckpt_dir = os.path.join(broken, "checkpoints")
      assert "7" not in os.listdir(ckpt_dir)  # killed before the save was complete ...
      assert any(name.startswith("7.") for name in os.listdir(ckpt_dir))  # ... but under way
      assert checkpoint.Checkpoints(broken, writer=False).steps() == [6]  # the last good one
  out = run_py(*args, f"--workdir={broken}").stdout
  assert "resuming" in out
  assert not [n for n in os.listdir(os.path.join(broken, "checkpoints")) if not n.isdigit()]

  records = metrics.read(broken)
  assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 11))
  assert [r["step"] for r in records if r["kind"] == "eval"] == [10]
  assert _losses(broken) == _losses(unbroken)
  want, got = jax.tree.leaves(_params(unbroken)), jax.tree.leaves(_params(broken))
  assert len(want) == len(got) and all(np.array_equal(a, b) for a, b in zip(want, got))


def _poison(monkeypatch, numbers: set[int]):
  """Micro-batches with these 0-based numbers in the run's data stream (resumes included) make a
  non-finite loss: their weights are NaN."""
  draw = loader._Batches.__getitem__

  def poisoned(self, b):
    batch = draw(self, b)
    if b in numbers:
      batch = {**batch, "weights": batch["weights"] * np.float32("nan")}
    return batch

  monkeypatch.setattr(loader._Batches, "__getitem__", poisoned)


def _skip_config(max_steps=8):
  config = _step_bound(max_steps)
  config.train.checkpoint_steps, config.train.log_every = 2, 3  # checks at steps 2, 3, 4, 6, 8
  config.train.on_nonfinite = "skip"
  return config


@pytest.mark.slow
def test_non_finite_loss_rolls_back_and_skips_the_batch_under_the_option(tmp_path, monkeypatch,
                                                                        capsys):
  clean, skipped = str(tmp_path / "clean"), str(tmp_path / "skipped")
  loop.train_and_evaluate(_skip_config(), clean)
  # Tiny's micro-batch is 4 rows and this step-bound config takes 2 per step: micro-batches 8 and
  # 9 make step 5, which is not checked; the NaN it leaves in the params shows at step 6.
  _poison(monkeypatch, {9})
  capsys.readouterr()
  loop.train_and_evaluate(_skip_config(), skipped)
  err = capsys.readouterr().err
  assert "at step 6" in err and "rolling back to step 4" in err
  assert "step 5: loss is not finite again; skipped its batch of 8 rows" in err

  records = metrics.read(skipped)
  assert [r["step"] for r in records if r["kind"] == "skip"] == [5]
  losses, reference = dict(_losses(skipped)), dict(_losses(clean))
  assert sorted(losses) == [3, 6, 8] and all(np.isfinite(list(losses.values())))
  assert losses[3] == reference[3]
  assert losses[6] != reference[6]  # steps 5 on trained on the batches after the bad one
  assert records[-1]["kind"] == "eval" and np.isfinite(records[-1]["mlm_loss"])

  # The default stops, naming the step; a batch that is always bad exhausts the skips.
  config = _skip_config()
  config.train.on_nonfinite = "stop"
  with pytest.raises(rollback.NonFiniteLoss, match="at step 6 .*keeps checkpoint step 4"):
    loop.train_and_evaluate(config, str(tmp_path / "stopped"))
  _poison(monkeypatch, set(range(10, 40)))
  with pytest.raises(rollback.NonFiniteLoss, match=r"after skipping 3 batches \(train.max_skips\)"):
    loop.train_and_evaluate(_skip_config(), str(tmp_path / "hopeless"))


def _file_size_limit(kib):
  """A command prefix for a real write failure, as a full disk gives, without root or a small
  filesystem: the kernel refuses writes past `kib` KiB per file (EFBIG) once SIGXFSZ, which would
  kill the writer, is ignored (an ignored signal stays ignored across exec)."""
  return ["bash", "-c", f'trap "" XFSZ; ulimit -f {kib}; exec "$@"', "bash"]


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_a_checkpoint_that_cannot_be_written_is_an_error_that_keeps_the_last_good_one(tmp_path):
  args = ["--config=configs/tiny.py", "--config.optim.schedule=constant",
          "--config.optim.warmup=0", "--config.train.ramp_until=0"]
  unbroken, full = str(tmp_path / "unbroken"), str(tmp_path / "full")
  run_py(*args, "--config.train.max_steps=4", f"--workdir={unbroken}")
  run_py(*args, "--config.train.max_steps=2", f"--workdir={full}")

  # Tiny's state is ~330 kB in one file: 100 kB lets the logs through and stops the save.
  proc = subprocess.run([*_file_size_limit(100), sys.executable, "run.py", *args,
                         "--config.train.max_steps=4", f"--workdir={full}"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: could not write checkpoint step 4 to {full}/checkpoints (OSError: File too large); "
      "is the disk full? Its partial files were removed; the workdir keeps checkpoint step 2: "
      "make room, then rerun the same command to resume")
  assert os.listdir(os.path.join(full, "checkpoints")) == ["2"]

  run_py(*args, "--config.train.max_steps=4", f"--workdir={full}")
  assert _losses(full) == _losses(unbroken)


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_a_moved_workdir_resumes_with_its_own_tokenizer(tmp_path):
  """On another machine (an empty cache) the store is encoded with WORKDIR/tokenizer.json, not a
  newly trained tokenizer: evaluation repeats and training resumes loss for loss. A tokenizer
  given by data.tokenizer that differs from the workdir's is refused, nothing written."""
  args = ["--config=configs/tiny.py", "--config.train.max_steps=3"]
  stay, workdir = str(tmp_path / "stay"), str(tmp_path / "run")
  two, three = tiny.get_config(), tiny.get_config()
  two.train.max_steps, three.train.max_steps = 2, 3
  for w in (stay, workdir):  # in this process: this machine, its cache
    loop.train_and_evaluate(two, w)
  loop.train_and_evaluate(three, stay)  # resumed on this machine
  here = [r for r in metrics.read(workdir) if r["kind"] == "eval"]
  assert here

  elsewhere = {"JAXBERT_CACHE": str(tmp_path / "other-machine")}
  run_py("--mode=evaluate", f"--workdir={workdir}", env=elsewhere)
  there = [r for r in metrics.read(workdir) if r["kind"] == "eval"][-1]
  assert there == here[-1]
  (store,) = os.listdir(tmp_path / "other-machine" / "stores")
  manifest = json.load(open(tmp_path / "other-machine" / "stores" / store / "manifest.json"))
  assert manifest["settings"]["tokenizer"]["type"] == "given"
  run_py(*args, f"--workdir={workdir}", env=elsewhere)
  assert _losses(workdir) == _losses(stay) and len(_losses(stay)) == 3

  # Another vocabulary given explicitly: two ids swap words.
  path = os.path.join(workdir, "tokenizer.json")
  vocab = json.load(open(path))["model"]["vocab"]
  text = open(path).read()
  a, b = list(vocab)[100:102]
  text = text.replace(f'"{a}": {vocab[a]}', f'"{a}": X').replace(
      f'"{b}": {vocab[b]}', f'"{b}": {vocab[a]}').replace(f'"{a}": X', f'"{a}": {vocab[b]}')
  other = str(tmp_path / "other.json")
  with open(other, "w") as f:
    f.write(text)
  before = sorted(os.listdir(workdir)), open(os.path.join(workdir, "metrics.jsonl")).read()
  proc = run_py("--config=configs/tiny.py", "--config.train.max_steps=4",
                f"--config.data.tokenizer={other}", f"--workdir={workdir}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert f"error: {path}, the tokenizer this workdir was trained with, differs from " in proc.stderr
  assert (sorted(os.listdir(workdir)),
          open(os.path.join(workdir, "metrics.jsonl")).read()) == before


def test_sources_as_a_list_or_a_comma_string_are_the_same_run():
  saved = {"data": {"sources": ["embedded", "text:books"], "weights": [1, 2]}}
  assert workdir_lib.incompatible_keys(saved, {"data": {"sources": "embedded, text:books",
                                                       "weights": "1,2.0"}}) == []
  assert workdir_lib.incompatible_keys(saved, {"data": {"sources": "embedded",
                                                       "weights": "1,2"}}) == ["data.sources"]
