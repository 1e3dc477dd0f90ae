"""How many rows fit in one forward/backward pass: `train.micro_batch = 0` asks the device.

The global batch and the schedule never depend on the answer (the trainer accumulates however
many micro-batches make a step), so one config runs on a 24 GB card and on a 141 GB one.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxbert import masking
from jaxbert.config import ConfigError

MAX_MICRO_BATCH = 512
MEMORY_HEADROOM = 0.85  # of the device's memory: allocator fragmentation, prefetched batches


def memory_limit(train_cfg) -> int:
  """Bytes one device may use: `train.device_memory_gb`, else what the device reports (GPUs),
  else the host memory available now (CPUs report none)."""
  if train_cfg.device_memory_gb > 0:
    return int(train_cfg.device_memory_gb * 2**30)
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  import psutil  # only CPUs get here

  return int(psutil.virtual_memory().available)


def choose(train_step, config, abstract_state, batch_sharding) -> tuple[int, int]:
  """(rows, bytes): the largest micro-batch whose compiled `train_step` fits in device memory.

  Candidates are powers of two up to MAX_MICRO_BATCH that divide train.batch_size and that the
  device count divides. XLA's memory analysis of the compiled step (params, optimizer state,
  gradients, the activations of one micro-batch) is the measure, so nothing has to run out of
  memory to find out.
  """
  tc = config.train
  devices = batch_sharding.mesh.size
  count = masking.num_masked(config.data.mask_rate, config.data.seq_len)
  candidates = [2**k for k in range(MAX_MICRO_BATCH.bit_length() - 1, -1, -1)
                if tc.batch_size % 2**k == 0 and 2**k % devices == 0]
  limit = memory_limit(tc)
  for rows in candidates:
    batch = {name: jax.ShapeDtypeStruct((1, rows, width), dtype, sharding=batch_sharding)
             for name, width, dtype in (("inputs", config.data.seq_len, jnp.int32),
                                        ("positions", count, jnp.int32),
                                        ("targets", count, jnp.int32),
                                        ("weights", count, jnp.float32))}
    m = train_step.lower(abstract_state, batch, np.float32(0)).compile().memory_analysis()
    need = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
            + m.temp_size_in_bytes)
    if need <= MEMORY_HEADROOM * limit:
      return rows, need
  raise ConfigError(
      f"the model does not fit: even a micro-batch of {candidates[-1] if candidates else 1} "
      f"rows needs more than {MEMORY_HEADROOM:.0%} of the {limit / 2**30:.1f} GiB of one "
      "device; use a smaller model, more devices with train.fsdp=true, or set train.micro_batch")
