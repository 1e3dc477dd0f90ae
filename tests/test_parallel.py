"""Data parallelism and FSDP on a mesh of 4 CPU devices (XLA's forced host device count), and
a run of two processes on localhost."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_py
from jaxbert.workdir import metrics

FOUR = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
ARGS = ["--config=configs/tiny.py", "--config.train.max_steps=4",
        "--config.train.checkpoint_steps=2", "--config.model.hidden_size=64",
        "--config.model.ffn_size=256"]


def _losses(workdir):
  return np.array([r["loss"] for r in metrics.read(workdir) if r["kind"] == "train"])


@pytest.mark.slow
def test_four_devices_match_one_with_and_without_fsdp_and_resume_across_them(tmp_path):
  one, dp, fsdp, moved = (str(tmp_path / n) for n in ("one", "dp", "fsdp", "moved"))
  run_py(*ARGS, f"--workdir={one}")
  assert "on 4 cpu device(s);" in run_py(*ARGS, f"--workdir={dp}", env=FOUR).stdout
  out = run_py(*ARGS, "--config.train.fsdp=true", f"--workdir={fsdp}", env=FOUR).stdout
  assert "on 4 cpu device(s) (params sharded)" in out
  # Started on one device, resumed on four with sharded params: the checkpoint is resharded.
  proc = run_py(*ARGS, "--config.train.checkpoint_steps=1", f"--workdir={moved}",
                faults="kill@step:4", check=False)
  assert proc.returncode == -9
  assert "resuming" in run_py(*ARGS, "--config.train.fsdp=true", f"--workdir={moved}",
                              env=FOUR).stdout
  reference = _losses(one)
  assert len(reference) == 4
  for workdir in (dp, fsdp, moved):
    np.testing.assert_allclose(_losses(workdir), reference, rtol=1e-5)


def test_fsdp_shards_large_arrays_over_the_devices_and_keeps_small_ones_whole():
  script = """
import json, jax
from jaxbert import config as config_lib
from jaxbert.pretrain import parallel, state
from configs import tiny
config = tiny.get_config()
config.model.hidden_size, config.model.ffn_size = 64, 256
config = config_lib.resolve(config)
model, tx, init = state.build(config)
abstract = jax.eval_shape(init, state.init_key(config))
mesh = parallel.make_mesh()
out = {}
for fsdp in (False, True):
  shardings = parallel.state_shardings(abstract, mesh, fsdp)
  leaves = jax.tree_util.tree_leaves_with_path(abstract.params)
  specs = jax.tree.leaves(shardings.params)
  out[str(fsdp)] = {jax.tree_util.keystr(p): [x.shape, list(s.spec)] for (p, x), s in
                    zip(leaves, specs)}
print(json.dumps({"devices": mesh.size, **out}))
"""
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, env={**os.environ, **FOUR})
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["devices"] == 4
  assert all(not any(spec) for _, spec in result["False"].values())
  sharded = {k: v for k, v in result["True"].items() if any(v[1])}
  whole = {k: v for k, v in result["True"].items() if not any(v[1])}
  assert "['encoder']['embeddings']['word']['embedding']" in sharded
  assert "['encoder']['layer_1']['ffn']['input']['kernel']" in sharded
  for shape, spec in sharded.values():  # the largest dimension, which 4 divides, is split
    assert spec.count("data") == 1
    assert shape[spec.index("data")] == max(shape) and max(shape) % 4 == 0
  assert all(np.prod(shape) < 2**14 for shape, _ in whole.values())


GLOO_LINE = re.compile(r"\[Gloo\] Rank \d+ is connected to \d+ peer ranks\. "
                       r"Expected number of connected peer ranks is : \d+")


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_two_devices_match_one_process(tmp_path):
  """Two processes on localhost, as two hosts would run: gloo carries the gradients on CPUs."""
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run_py(*ARGS, f"--workdir={one}")
  coordinator = f"localhost:{_free_port()}"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  procs = [subprocess.Popen([sys.executable, "run.py", *ARGS, f"--workdir={two}",
                             f"--coordinator={coordinator}", "--num_processes=2",
                             f"--process_id={i}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in (1, 0)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
  # Only the first process reports. Gloo's connection lines come from C++ on every process, from
  # one thread per communicator, so two of them can interleave into "[Gloo] ...[Gloo] ...\n\n":
  # cut the messages out whole rather than line by line.
  assert GLOO_LINE.sub("", outs[0][0]).strip() == ""
  assert "on 4 cpu device(s)" in outs[1][0] and "held-out MLM" in outs[1][0]
  np.testing.assert_allclose(_losses(two), _losses(one), rtol=1e-5)
  assert [r["step"] for r in metrics.read(two) if r["kind"] == "eval"] == [4]
