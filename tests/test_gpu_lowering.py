"""The day's train step as a GPU builds it, checked on a host without one (jaxbert/targets.py).

Attention: the day config's model.attention="auto" runs jax.nn.dot_product_attention with no
implementation named, which in jax 0.10 is XLA's attention on a GPU as well, and that is the path
lowered here. The cuDNN path (attention="cudnn") is not covered: jax reads the installed cuDNN's
version while tracing it, so it cannot even be traced without the NVIDIA libraries ("cuDNN is not
detected"). The CUDA compile needs the optional jax-cuda12-plugin and is skipped without it.
"""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import day
from conftest import ROOT
from jaxbert import targets
from jaxbert.config import ConfigError
from jaxbert.pretrain import parallel
from jaxbert.pretrain import step as step_lib

MICRO_BATCH = 8  # rows per micro-batch: small, so that lowering is quick; the rest is the day's
OPERANDS = re.compile(r"stablehlo\.dot_general .*?: \((tensor<[^>]*>), (tensor<[^>]*>)\)")


def _bf16(product: str) -> bool:
  """Whether a dot_general line multiplies in bfloat16: its operands, or its algorithm's."""
  a, b = OPERANDS.search(product).groups()
  return (a.endswith("xbf16>") and b.endswith("xbf16>")
          or "lhs_precision_type = bf16, rhs_precision_type = bf16" in product)


def _day(micro_batch=MICRO_BATCH):
  config = day.get_config()
  config.train.micro_batch = micro_batch
  return config


def test_for_device_resolves_for_the_target_whatever_this_host_is():
  cuda, cpu = targets.for_device(_day(), "cuda"), targets.for_device(_day(), "cpu")
  assert (cuda.model.dtype, cpu.model.dtype) == ("bfloat16", "float32")
  assert targets.build(cuda, "cuda")[0].config.cpu_products is False
  assert targets.build(cpu, "cpu")[0].config.cpu_products is True
  given = _day()
  given.model.dtype = "float32"  # a dtype the config names is kept
  assert targets.for_device(given, "cuda").model.dtype == "float32"
  with pytest.raises(ConfigError, match="use one of cpu, cuda"):
    targets.for_device(_day(), "metal")


def test_day_step_lowers_for_cuda_in_bfloat16_at_every_step_size_of_the_ramp():
  """One CUDA lowering of the step with the number of micro-batches symbolic, then each step size
  the ramp reaches (step.accumulation over progress) lowered from it: abstract inputs only."""
  config = targets.for_device(_day(), "cuda")
  exported = targets.export_step(config, "cuda")
  assert exported.platforms == ("cuda",)
  text = exported.mlir_module()
  products = [line for line in text.splitlines() if "stablehlo.dot_general" in line]
  # Per layer six Dense products and two in attention, each with two more in the backward pass.
  assert len(products) >= 3 * 8 * config.model.num_layers
  f32 = [OPERANDS.search(line).groups() for line in products if not _bf16(line)]
  # All in bfloat16 but the tied head's backward: its float32 logits' cotangent promotes both of
  # its products (input and embedding gradients) to float32 x float32.
  vocab = f"x{config.model.vocab_size}x"
  assert len(f32) <= 2 and all(vocab in a + b for a, b in f32), f32
  assert "f64" not in text
  # The CPU products keep their layout with optimisation barriers; a GPU step has none.
  assert "optimization_barrier" not in text
  assert "cudnn" not in text  # XLA's attention, as "auto" resolves

  tc = config.train
  levels = sorted({step_lib.accumulation(tc, t) for t in np.linspace(0, 1, 2001)})
  assert levels == step_lib.accumulation_levels(tc) and len(levels) == tc.ramp_levels
  assert levels[-1] * tc.micro_batch == tc.batch_size == 8192
  _, _, init = targets.build(config, "cuda")
  mesh = parallel.make_mesh(jax.devices()[:1])
  for n in levels:
    args, _ = targets.step_args(config, init, mesh, n)
    lowered = jax.jit(exported.call).trace(*args).lower(lowering_platforms=("cuda",))
    shape = f"tensor<{n}x{tc.micro_batch}x{config.data.seq_len}xi32>"
    assert shape in lowered.as_text(), n


def test_unknown_device_and_missing_plugin_are_one_line_config_errors(monkeypatch):
  with pytest.raises(ConfigError, match="known devices are a100, a6000, h100, h200") as e:
    targets.compile_for(_day(), "l4")
  assert "\n" not in str(e.value)
  monkeypatch.setattr(targets, "PLUGIN", "jaxbert-no-such-plugin")
  with pytest.raises(ConfigError, match=r"pip install jaxbert-no-such-plugin==\d") as e:
    targets.compile_for(_day(), "h100")
  assert "\n" not in str(e.value)


COMPILE = """
import json
from configs import day
from jaxbert import targets

def config(**train):
  c = day.get_config()
  c.model.num_layers = 2  # the day's width and shapes; two layers keep each compile short
  c.train.update(train)
  return c

print(json.dumps([targets.compile_for(config(), "h100"),
                  targets.compile_for(config(micro_batch=256), "a100"),
                  targets.compile_for(config(batch_size=1, device_memory_gb=0.01), "h100")]))
"""


def test_compile_for_a_gpu_without_one_picks_the_micro_batch_from_its_memory():
  pytest.importorskip("jax_plugins.xla_cuda12")
  # A process of its own: the plugin loads its compiler only when the CPU alone is asked for.
  proc = subprocess.run([sys.executable, "-c", COMPILE], cwd=ROOT, capture_output=True, text=True,
                        timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  auto, given, none = json.loads(proc.stdout.splitlines()[-1])
  # 80 GB of memory, of which JAX's allocator takes 75%: the largest candidate fits.
  assert auto["limit_bytes"] == int(84942979072 * 0.75)
  assert auto["micro_batch"] == 512 and auto["fits"]
  assert given["micro_batch"] == 256 and given["fits"] and given["device"] == "a100"
  # Params, gradients and two Adam moments in float32 at least, and more with more rows.
  params = 32768 * 768 + 2 * 10 * 768 * 768
  assert 16 * params < given["memory_bytes"] < auto["memory_bytes"]
  assert none["micro_batch"] is None and not none["fits"]
  assert none["memory_bytes"] > none["limit_bytes"] == int(0.01 * 2**30)
