"""The train step as another machine would build it, from this host: a GPU's, without a GPU.

`for_device` resolves a config for a target platform rather than for the backend at hand (the
"auto" dtype), and `build` leaves the CPU matmul tuning off unless the target is a CPU. With them,
`export_step` lowers the step for CUDA from abstract inputs alone, and `compile_for` (with the
optional jax-cuda12-plugin: `pip install -e ".[gpu-plan]"`) compiles it with XLA's GPU compiler
against a device spec shipped in jaxbert/gpu_specs/, to read the memory a micro-batch needs there
and the micro-batch the automatic rule (pretrain/microbatch.py) would pick.
"""

import dataclasses
import importlib.metadata
import os
import re

import jax
import jax.numpy as jnp
import ml_collections

from jaxbert import config as config_lib
from jaxbert import masking
from jaxbert.config import ConfigError
from jaxbert.pretrain import loop, microbatch, parallel, state
from jaxbert.pretrain import step as step_lib

# model.dtype "auto" on each platform, as config.compute_dtype picks it on that backend.
COMPUTE_DTYPE = {"cpu": "float32", "cuda": "bfloat16", "rocm": "bfloat16", "tpu": "bfloat16"}

# Device names and XLA's GPU target specs (jaxbert/gpu_specs/SOURCES.md says where each is from).
SPECS = {"h100": "h100_sxm.txtpb", "h200": "h200.txtpb", "a100": "a100_sxm_80.txtpb",
         "a6000": "a6000.txtpb"}
SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu_specs")
PLUGIN = "jax-cuda12-plugin"
# Of a GPU's memory, what JAX's allocator may use unless XLA_PYTHON_CLIENT_MEM_FRACTION says
# otherwise: the bytes_limit that microbatch.memory_limit reads on a real device.
DEFAULT_MEM_FRACTION = 0.75


def for_device(config: ml_collections.ConfigDict, platform: str = "cuda"):
  """A resolved copy of `config` as it resolves on `platform`: config.resolve fills the "auto"
  dtype from this host's backend, so it is filled from the target's first."""
  if platform not in COMPUTE_DTYPE:
    raise ConfigError(f"platform {platform!r}: use one of {', '.join(COMPUTE_DTYPE)}")
  config = ml_collections.ConfigDict(config.to_dict())
  if config.model.dtype == "auto":
    config.model.dtype = COMPUTE_DTYPE[platform]
  return config_lib.resolve(config)


def build(config, platform: str = "cuda"):
  """state.build's (model, optimizer, init) with the CPU products only for a CPU target:
  cpu.tuned sets them from this host's backend."""
  model, tx, init = state.build(config)
  # The products change no parameter, so `init` (of the host's model) makes the target's state.
  target = dataclasses.replace(model.config, cpu_products=platform == "cpu")
  return model.clone(config=target), tx, init


def abstract_batches(config, micro_batches, sharding=None) -> dict:
  """The stacked batch the loop passes the step, [micro_batches, micro_batch, ...], as
  ShapeDtypeStructs with loader.py's dtypes; `micro_batches` may be a symbolic dimension."""
  rows, length = config.train.micro_batch, config.data.seq_len
  count = masking.num_masked(config.data.mask_rate, length)
  fields = [("inputs", length, jnp.int32), ("positions", count, jnp.int32),
            ("targets", count, jnp.int32), ("weights", count, jnp.float32)]
  if config.data.pack == "sentences":  # padded rows come with their mask
    fields.append(("attention_mask", length, jnp.bool_))
  return {name: jax.ShapeDtypeStruct((micro_batches, rows, width), dtype, sharding=sharding)
          for name, width, dtype in fields}


def step_args(config, init, mesh, micro_batches):
  """(jitted step inputs as ShapeDtypeStructs, state and batch shardings) on `mesh`, as
  loop.layout places them; the progress t is a float32 scalar, as the loop passes it."""
  abstract_state, state_sharding, batch_sharding = loop.layout(config, init, mesh)
  args = (abstract_state, abstract_batches(config, micro_batches, batch_sharding),
          jax.ShapeDtypeStruct((), jnp.float32))
  return args, (state_sharding, batch_sharding)


def export_step(config, platform: str = "cuda", micro_batches=None) -> jax.export.Exported:
  """The train step of a `for_device` config lowered for `platform` from abstract inputs on a
  one-device mesh of this host. micro_batches=None leaves their number symbolic ("n"), so one
  lowering stands for every step size of the batch ramp."""
  if micro_batches is None:
    micro_batches, = jax.export.symbolic_shape("n")
  model, tx, init = build(config, platform)
  args, shardings = step_args(config, init, parallel.make_mesh(jax.devices()[:1]), micro_batches)
  train_step = step_lib.make_train_step(model, tx, config, shardings)
  return jax.export.export(train_step, platforms=[platform])(*args)


# ---------------------------------------------------------------------------------------------
# A GPU compile without a GPU.

def spec_path(device: str) -> str:
  if device not in SPECS:
    raise ConfigError(f"device {device!r}: known devices are {', '.join(sorted(SPECS))} "
                      f"(XLA GPU specs in {SPEC_DIR})")
  return os.path.join(SPEC_DIR, SPECS[device])


def device_memory(spec: str) -> int:
  """The device memory a GPU target spec gives, in bytes."""
  found = re.search(r"^\s*device_memory_size:\s*(\d+)", spec, re.MULTILINE)
  if not found:
    raise ConfigError("the GPU spec has no gpu_device_info.device_memory_size")
  return int(found.group(1))


def usable_memory(train_cfg, spec: str) -> int:
  """Bytes the automatic rule would be given on that device: `train.device_memory_gb`, else the
  allocator's share of the spec's memory (what the device reports as bytes_limit)."""
  if train_cfg.device_memory_gb > 0:
    return int(train_cfg.device_memory_gb * 2**30)
  fraction = float(os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", DEFAULT_MEM_FRACTION))
  return int(device_memory(spec) * fraction)


def _require_plugin():
  try:
    importlib.metadata.version(PLUGIN)
  except importlib.metadata.PackageNotFoundError:
    raise ConfigError(f"compiling for a GPU on this host needs XLA's CUDA compiler: pip install "
                      f"{PLUGIN}=={jax.__version__} (or pip install -e \".[gpu-plan]\")") from None


def topology_devices(spec: str) -> list:
  """Compile-only devices of one GPU described by `spec` (XLA's GpuTargetConfigProto text)."""
  from jax.experimental import topologies

  _require_plugin()
  try:
    topology = topologies.get_topology_desc(platform="cuda", topology="1x1x1", target_config=spec)
  except NotImplementedError:
    # The plugin registers its compiler only when it skips its CUDA library checks, which it
    # does when the CPU alone is asked for.
    raise ConfigError(f"{PLUGIN} is installed but did not load without a GPU: run with "
                      "JAX_PLATFORMS=cpu") from None
  return topology.devices


def _need(memory) -> int:
  """Bytes a compiled step needs, summed as microbatch.choose sums them."""
  return (memory.argument_size_in_bytes + memory.output_size_in_bytes
          - memory.alias_size_in_bytes + memory.temp_size_in_bytes)


def compile_for(config, device: str) -> dict:
  """Compiles the train step for one GPU `device` (a key of SPECS) on this host, no GPU needed.

  Returns {"device", "memory_bytes", "micro_batch", "fits", "limit_bytes"}: with
  train.micro_batch=0 the micro-batch microbatch.choose picks against that device's memory
  (None if none fits; memory_bytes is then the smallest candidate's), else the config's own;
  memory_bytes is what XLA's memory analysis says that step needs; fits whether it is within
  microbatch.MEMORY_HEADROOM of limit_bytes, the memory the rule is given (usable_memory).

  A lower bound: without a device XLA autotunes nothing. It keeps its default GEMM fusions, while
  a real GPU's compile may pick cuBLAS or cuDNN calls whose workspace buffers this plan lacks
  (they count 0 here), so the device needs somewhat more. Needs jax-cuda12-plugin at jax's
  version and, on a host without a GPU, JAX_PLATFORMS=cpu (ConfigError otherwise). Each
  candidate micro-batch is one compile: about 20 s for the day's 16 layers on two CPU cores.
  """
  with open(spec_path(device)) as f:
    spec = f.read()
  devices = topology_devices(spec)
  config = for_device(config, "cuda")
  limit = usable_memory(config.train, spec)
  config.train.device_memory_gb = limit / 2**30  # what microbatch.memory_limit then reads
  model, tx, init = build(config, "cuda")
  args, shardings = step_args(config, init, parallel.make_mesh(devices), 1)
  train_step = step_lib.make_train_step(model, tx, config, shardings)
  result = {"device": device, "limit_bytes": limit, "micro_batch": config.train.micro_batch}
  if not config.train.micro_batch:
    try:
      rows, need = microbatch.choose(train_step, config, args[0], shardings[1])
      return {**result, "memory_bytes": need, "micro_batch": rows, "fits": True}
    except ConfigError:  # none fits: measure the smallest candidate, one row on one device
      result["micro_batch"] = None
      config.train.micro_batch = 1
      args, _ = step_args(config, init, parallel.make_mesh(devices), 1)
  need = _need(train_step.lower(*args).compile().memory_analysis())
  return {**result, "memory_bytes": need, "fits": need <= microbatch.MEMORY_HEADROOM * limit}
