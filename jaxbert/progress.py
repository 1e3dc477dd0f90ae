"""What a person watching a run sees: a live progress bar on a terminal, plain lines elsewhere.

Also the peak matrix rate of known accelerators, for model FLOP utilisation (MFU): achieved
FLOP/s (model.flops_per_token × tokens/s) over the device's peak dense bfloat16 rate.
"""

import sys
import time

from tqdm import tqdm

# Peak dense bf16 tensor-core FLOP/s from NVIDIA's data sheets, matched in order against
# jax.Device.device_kind (e.g. "NVIDIA H100 80GB HBM3"). Sparse rates are twice these.
PEAK_BF16_FLOPS = (
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12),
    ("L40S", 362e12), ("L4", 121e12), ("4090", 165e12),
)


def peak_flops(device_kind: str, dtype: str, override_tflops: float = 0.0) -> float | None:
  """The device's peak FLOP/s for this compute dtype, or None when unknown (CPUs, float32)."""
  if override_tflops > 0:
    return override_tflops * 1e12
  if dtype != "bfloat16":
    return None
  return next((peak for name, peak in PEAK_BF16_FLOPS if name in device_kind), None)


class Speed:
  """Tokens per second since the last measurement, and the FLOP rate and MFU they give."""

  def __init__(self, flops_per_token: float, peak: float | None, tokens: int):
    self.flops, self.peak = flops_per_token, peak
    self.restart(tokens)

  def restart(self, tokens: int):
    self.since = (time.monotonic(), tokens)

  def pause(self, seconds: float):
    """Leaves `seconds` spent on something else out of the next measurement."""
    self.since = (self.since[0] + seconds, self.since[1])

  def measure(self, tokens: int) -> dict:
    now = time.monotonic()
    tokens_per_s = (tokens - self.since[1]) / (now - self.since[0])
    self.since = (now, tokens)
    mfu = {"mfu": tokens_per_s * self.flops / self.peak} if self.peak else {}
    return {"tokens_per_s": tokens_per_s, "tflops_per_s": tokens_per_s * self.flops / 1e12, **mfu}


class Progress:
  """What a long task shows while it runs: on a terminal, a live bar; elsewhere (CI, nohup, a
  pipe), plain lines, so that logs read top to bottom.

  Two uses. A run that reports numbers calls `update(position, line)`: the bar moves to
  `position` of `total` with `line` beside it, or the line is printed. A task that counts work
  (characters cleaned, rows predicted) calls `advance(n)`: the bar counts up, or a line with the
  count and its rate is printed every `every` seconds.
  """

  def __init__(self, total: float | None = None, unit: str = "it", start: float = 0.0,
               stream=None, *, desc: str | None = None, every: float = 30.0, tag: str = ""):
    self.stream = stream or sys.stdout
    self.desc, self.unit, self.every, self.tag = desc, unit, every, tag
    self.n, self.t0 = 0, time.monotonic()
    self.last = self.t0
    self.bar = None
    if self.stream.isatty():
      if desc is None:  # a run's bar: its position, then the latest numbers
        self.bar = tqdm(total=total, initial=start, unit=unit, file=self.stream,
                        dynamic_ncols=True, bar_format="{l_bar}{bar}| {postfix}")
      else:
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=self.stream,
                        mininterval=1, leave=False)

  def update(self, position: float, line: str):
    if self.bar is None:
      print(line, file=self.stream, flush=True)
      return
    self.bar.n = min(position, self.bar.total)
    self.bar.set_postfix_str(line, refresh=True)

  def advance(self, n: int):
    self.n += n
    if self.bar is not None:
      self.bar.update(n)
    elif time.monotonic() - self.last >= self.every:
      self.last = time.monotonic()
      rate = self.n / max(self.last - self.t0, 1e-9)
      print(f"{self.tag}{self.desc}: {self.n / 1e6:.1f}M {self.unit} ({rate / 1e6:.2f}M/s)",
            file=self.stream, flush=True)

  def write(self, line: str):
    """A line of its own, above the bar."""
    if self.bar is None:
      print(line, file=self.stream, flush=True)
    else:
      self.bar.write(line, file=self.stream)

  def close(self):
    if self.bar is not None:
      self.bar.close()
      self.bar = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
