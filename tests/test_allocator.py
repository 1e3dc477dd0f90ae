"""allocator.keep_freed_memory: XLA's large CPU buffers come from malloc's heap, not fresh mmaps."""
import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

from conftest import ROOT

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Runs in a fresh process, since the settings only take before jax starts its backend. glibc's
# mallinfo2 counts the bytes malloc holds in mmapped blocks: with the settings, none of the two
# live 128 MiB arrays that XLA's threads wrote.
_PROBE = """
import ctypes, json
from jaxbert.cpu import allocator

class Mallinfo2(ctypes.Structure):
  _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
applied = allocator.keep_freed_memory()
import jax.numpy as jnp
x = jnp.ones((32 << 20,), jnp.float32)
y = (x * 2).block_until_ready()
mmapped = libc.mallinfo2().hblkhd
# Then 3 GiB in ten blocks, never written (no memory used), freed: the free top of the heap is
# above 2 GiB, which a trim threshold of INT_MAX would still hand back to the kernel.
blocks = [libc.malloc(300 << 20) for _ in range(10)]
held = libc.mallinfo2().arena
for b in reversed(blocks):
  libc.free(b)
print(json.dumps({"applied": applied, "mmapped": mmapped, "heap_held": held,
                  "heap_after_free": libc.mallinfo2().arena}))
"""


def _probe(**env):
  clean = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
  proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, env={**clean, "JAX_PLATFORMS": "cpu", **env})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="glibc 2.33 or later only")
def test_large_cpu_buffers_come_from_the_heap():
  kept = _probe()
  assert kept["applied"]
  assert kept["mmapped"] < 32 << 20
  assert kept["heap_held"] >= 3000 << 20  # the 300 MiB blocks too came from the heap...
  assert kept["heap_after_free"] == kept["heap_held"]  # ...and stay there once freed
  # A user's own malloc setting wins: nothing is changed, and the arrays are mmapped as usual.
  usual = _probe(MALLOC_ARENA_MAX="8")
  assert not usual["applied"]
  assert usual["mmapped"] >= 256 << 20


def test_accelerator_platforms_are_left_alone():
  import jax

  from jaxbert.cpu import allocator

  before = jax.config.jax_platforms
  try:
    for platforms, cpu in (("cpu", True), ("cuda", False), ("cuda,cpu", False), ("tpu", False)):
      jax.config.update("jax_platforms", platforms)
      assert allocator.cpu_only() is cpu, platforms
    assert not allocator.keep_freed_memory()  # "tpu": no mallopt call, this process unchanged
  finally:
    jax.config.update("jax_platforms", before)
