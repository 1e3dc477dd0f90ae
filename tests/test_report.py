"""What people look at: TensorBoard event files, the report and its curves, the progress display."""

import io
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from conftest import run_py
from jaxbert import progress
from jaxbert.workdir import metrics


def _scalars(workdir):
  """{tag: {step: value}} as TensorBoard shows them: a run's START session log at step s
  (written on resume) drops the points at steps >= s written before it."""
  logdir = os.path.join(workdir, "tensorboard")
  points = {}
  for name in sorted(os.listdir(logdir)):  # file names begin with the creation time
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    at = 0
    while at < len(data):  # TFRecord framing: length, its CRC, payload, payload CRC
      (length,) = struct.unpack("<Q", data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 16 + length
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        points = {tag: {s: v for s, v in p.items() if s < event.step} for tag, p in points.items()}
      for value in event.summary.value:
        points.setdefault(value.tag, {})[event.step] = value.simple_value
  return points


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_tensorboard_events_mirror_metrics_across_a_resume(tmp_path):
  workdir = str(tmp_path / "run")
  run_py("--config=configs/tiny.py", f"--workdir={workdir}")
  run_py("--config=configs/tiny.py", "--config.train.max_steps=5", f"--workdir={workdir}")
  records = metrics.read(workdir)
  train = {r["step"]: r for r in records if r["kind"] == "train"}
  scalars = _scalars(workdir)
  assert sorted(scalars["train/loss"]) == [1, 2, 3, 4, 5] == sorted(train)
  for key in ("loss", "lr", "tokens_per_s"):
    assert all(scalars[f"train/{key}"][s] == np.float32(train[s][key]) for s in train)
  assert sorted(scalars["eval/mlm_loss"]) == [3, 5]
  assert "train/mfu" not in scalars  # a CPU has no known peak


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
def test_report_and_curves_after_training_and_on_demand(tmp_path):
  workdir = str(tmp_path / "run")
  out = run_py("--config=configs/tiny.py", f"--workdir={workdir}").stdout
  assert f"report: {workdir}/report.md" in out
  assert "step 3/3 | loss " in out  # not a terminal: plain lines
  ev = [r for r in metrics.read(workdir) if r["kind"] == "eval"][-1]
  text = open(os.path.join(workdir, "report.md")).read()
  assert "2 layers × 32" in text and f"| model | {ev['mlm_loss']:.3f} |" in text
  assert f"| unigram baseline | {ev['unigram_loss']:.3f} |" in text
  png = open(os.path.join(workdir, "curves.png"), "rb").read()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

  os.remove(os.path.join(workdir, "report.md"))
  os.remove(os.path.join(workdir, "curves.png"))
  run_py("--mode=report", f"--workdir={workdir}")
  assert open(os.path.join(workdir, "report.md")).read() == text
  assert os.path.getsize(os.path.join(workdir, "curves.png")) > 10_000

  proc = run_py("--mode=report", f"--workdir={tmp_path / 'nothing'}", check=False)
  assert proc.returncode == 1 and "holds no jaxbert run" in proc.stderr


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
  plain = io.StringIO()
  with progress.Progress(10, "step", stream=plain) as p:
    p.update(5, "step 5/10 | loss 3.2")
  assert plain.getvalue() == "step 5/10 | loss 3.2\n"
  terminal = _Terminal()
  with progress.Progress(10, "step", stream=terminal) as p:
    p.update(5, "step 5/10 | loss 3.2")
  assert "\r" in terminal.getvalue() and "50%" in terminal.getvalue()
  assert "step 5/10 | loss 3.2" in terminal.getvalue()


def test_peak_flops_of_known_devices():
  assert progress.peak_flops("NVIDIA H200", "bfloat16") == 989e12
  assert progress.peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
  assert progress.peak_flops("NVIDIA A100-SXM4-80GB", "bfloat16") == 312e12
  assert progress.peak_flops("NVIDIA H200", "float32") is None
  assert progress.peak_flops("cpu", "float32") is None
  assert progress.peak_flops("cpu", "float32", override_tflops=2.5) == 2.5e12
