"""XLA's persistent compilation cache for jaxbert's commands: a program compiles once per machine.

Compiling counts against a cram's budget, and each batch size of the ramp is its own program (a
16-layer step takes tens of seconds to compile on a GPU, a tiny one about ten on a CPU core). With
the cache, a resumed run, a rerun, an evaluation or a fine-tune reads programs it compiled before
instead of compiling them again. JAX keys every entry by the program, the compile options, the
jax version and the device, so an entry is only ever used for the program it was made from.
"""

import os

MAX_BYTES = 4 * 2**30  # least recently used entries go first beyond this


def enable(cache_root: str = "", min_compile_seconds: float | None = None) -> str:
  """Turns the cache on for this process and returns its directory.

  $JAX_COMPILATION_CACHE_DIR, if set, is JAX's own setting and is left as it is; else entries go
  to CACHE_ROOT/xla, where CACHE_ROOT defaults to $JAXBERT_CACHE or ~/.cache/jaxbert (the token
  stores' root). `min_compile_seconds`: keep programs that compiled at least this fast (JAX's
  default, 1 s, when None)."""
  import jax

  from jaxbert.data.text import resolve_cache

  path = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if not path:
    path = os.path.join(resolve_cache(cache_root), "xla")
    jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # needs filelock, a dependency
  if min_compile_seconds is not None:  # JAX keeps only programs that took 1 s or more by default
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
  return path
