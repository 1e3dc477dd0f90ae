"""The host's malloc, tuned so that XLA's CPU runtime reuses memory instead of refaulting it.

XLA's CPU runtime allocates every step's buffers afresh: the temporaries of one execution and
each output. glibc's malloc serves a block above 32 MB, and any block a worker thread's own
64 MB heap cannot hold, with mmap, and unmaps it on free; the next step's block is new memory
whose every page the kernel faults in and zeroes again. The MLM head's logits alone are 128 MB
at the Hugging Face comparison's shape. Kept for reuse instead, the quick config's step ran
1.4-1.6x as many tokens/s on two cores and the comparison shape's 1.19x, and the process's
time in the kernel fell to a quarter (BENCHMARKS.md, "malloc on the CPU").

`keep_freed_memory` sets three of malloc's parameters (mallopt(3)): one arena for all threads,
no mmap, and no returning of freed memory to the kernel. The process's resident memory then
stays at its peak instead of falling between steps, which a training run reaches on its first
step anyway. On an accelerator the host does little allocating and shares its cores with data
loading, where one arena could contend, so this is for CPU runs only.

One arena has a cost: threads that allocate at once wait on its lock. XLA compiles with several
threads, and on two cores the quick config's train step took 4.0-5.3 s to compile instead of
3.2-3.8 s. A training run compiles a few programs, then repeats its step for the whole budget,
so run.py tunes training runs (with the fine-tuning that follows in the same process). A
fine-tuning command alone has small batches and nothing to gain: the quick config's table took
215 and 185 s tuned against 179 and 180 s as it is, so it is left as it is.
"""
import ctypes
import importlib.metadata
import importlib.util
import os
import platform

import jax

# mallopt(3) parameter numbers, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
# Variables by which a user sets these parameters; a choice made there is left alone.
_USER_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                  "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def cpu_only() -> bool:
  """Whether jax will compute on the CPU, decided without starting a backend."""
  platforms = jax.config.jax_platforms
  if platforms:
    return {p.strip() for p in platforms.split(",")} <= {"cpu"}
  # With no platform named, jax takes a GPU or TPU backend from an installed plugin if it can.
  return not (importlib.metadata.entry_points(group="jax_plugins")
              or importlib.util.find_spec("jax_plugins") is not None
              or importlib.util.find_spec("libtpu") is not None)


def keep_freed_memory() -> bool:
  """On a CPU run under glibc, has malloc keep freed memory for reuse; returns whether it did.

  Call it before jax starts its backend (its first computation or `jax.devices()`): a thread
  that has allocated by then keeps its own arena, and its large blocks stay mmapped.
  """
  if (platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not cpu_only()
      or any(name in os.environ for name in _USER_SETTINGS)):
    return False
  libc = ctypes.CDLL(None)
  # A trim threshold of -1 turns trimming off (mallopt(3)); the largest int, 2**31 - 1, would
  # still hand back a free top of the heap above 2 GiB: a process holding several compiled steps
  # (the Hugging Face comparison) crossed that, and ran some of its models slowly in some runs.
  return all(libc.mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
