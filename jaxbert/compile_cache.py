"""XLA's persistent compilation cache for jaxbert's commands: a program compiles once per machine.

Compiling counts against a cram's budget, and each batch size of the ramp is its own program (a
16-layer step takes tens of seconds to compile on a GPU, a tiny one about ten on a CPU core). With
the cache, a resumed run, a rerun, an evaluation or a fine-tune reads programs it compiled before
instead of compiling them again. JAX keys every entry by the program, the compile options, the
jax version and the device, so an entry is only ever used for the program it was made from.
"""

import os

MAX_BYTES = 4 * 2**30  # least recently used entries go first beyond this


def enable(cache_root: str = "") -> str:
  """Turns the cache on for this process and returns its directory.

  $JAX_COMPILATION_CACHE_DIR, if set, is JAX's own setting and is left as it is; else entries go
  to CACHE_ROOT/xla, where CACHE_ROOT defaults to $JAXBERT_CACHE or ~/.cache/jaxbert (the token
  stores' root)."""
  import jax

  from jaxbert.data.text import resolve_cache

  path = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if not path:
    path = os.path.join(resolve_cache(cache_root), "xla")
    jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # needs filelock, a dependency
  return path
