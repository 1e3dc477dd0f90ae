"""Speed-ups for XLA's CPU backend, each justified by a benchmark; none changes what is computed.

- `matmul.py`: Dense and tied-head products whose weight gradients take XLA's fast CPU matmul
  (benchmarks/head.py, benchmarks/throughput.py); a model opts in with
  `ModelConfig(cpu_products=True)`, which `tuned` sets on a CPU backend.
- `allocator.py`: malloc keeps freed memory for reuse, so XLA's per-step buffers are not faulted
  in afresh every step (benchmarks/throughput.py --nokeep_freed_memory); run.py sets it for
  training runs.
"""
import dataclasses

import jax


def tuned(model_config):
  """The model config the steps run: with the CPU products on a CPU backend, else unchanged."""
  on_cpu = jax.default_backend() == "cpu"
  return dataclasses.replace(model_config, cpu_products=on_cpu)
