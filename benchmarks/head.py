"""The MLM head's forward and backward alone: jaxbert's against the plain autodiff of the same math.

  python benchmarks/head.py [--rows=1024 --hidden=256 --vocab=32768 --steps=3 --repeats=7]

Both compute the tied decoder's logits for `rows` predicted positions, the summed cross-entropy
and the top-1 hit count, and the gradients for the hidden states and the embedding table:
  plain:   jnp.dot(x, w.T), optax.softmax_cross_entropy_with_integer_labels, argmax == target;
  jaxbert: matmul.logits and loss.cross_entropy, as the train step runs them.
Defaults are the head of the 4-layer, 256-wide comparison with Hugging Face's BERT (32 rows of
32 predicted positions). Alternates the two, one repeat at a time; each repeat is the median of
`steps` calls; prints one JSON object with the medians and their ratio.
"""
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags

from jaxbert.cpu import allocator, matmul
from jaxbert.pretrain import loss

flags.DEFINE_integer("rows", 1024, "predicted positions per call")
flags.DEFINE_integer("hidden", 256, "hidden size")
flags.DEFINE_integer("vocab", 32768, "vocabulary size")
flags.DEFINE_integer("steps", 3, "calls per repeat")
flags.DEFINE_integer("repeats", 7, "repeats, alternating the two")
flags.DEFINE_bool("keep_freed_memory", True, "tune malloc as run.py does (jaxbert.allocator)")
FLAGS = flags.FLAGS


def _plain(x, w, targets):
  logits = jnp.dot(x, w.T, preferred_element_type=jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  return ce.sum(), (jnp.argmax(logits, -1) == targets).sum()


def _jaxbert(x, w, targets):
  ce, hit = loss.cross_entropy(matmul.logits(x, w), targets)
  return ce.sum(), hit.sum()


def main(_):
  kept = FLAGS.keep_freed_memory and allocator.keep_freed_memory()  # before jax's backend starts
  kx, kw, kt = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (FLAGS.rows, FLAGS.hidden), jnp.float32)
  w = 0.02 * jax.random.normal(kw, (FLAGS.vocab, FLAGS.hidden), jnp.float32)
  targets = jax.random.randint(kt, (FLAGS.rows,), 0, FLAGS.vocab)
  fns = {name: jax.jit(jax.grad(f, argnums=(0, 1), has_aux=True))
         for name, f in (("plain", _plain), ("jaxbert", _jaxbert))}
  out = {name: jax.block_until_ready(f(x, w, targets)) for name, f in fns.items()}  # compile
  (gx, gw), hits = out["plain"]
  (jx, jw), jhits = out["jaxbert"]
  # The two must agree before their times mean anything.
  max_diff = max(float(jnp.abs(gx - jx).max()), float(jnp.abs(gw - jw).max()))
  times = {name: [] for name in fns}
  for _ in range(FLAGS.repeats):
    for name, f in fns.items():
      per_call = []
      for _ in range(FLAGS.steps):
        start = time.perf_counter()
        jax.block_until_ready(f(x, w, targets))
        per_call.append(time.perf_counter() - start)
      times[name].append(statistics.median(per_call))
  medians = {name: statistics.median(t) for name, t in times.items()}
  print(json.dumps({
      "backend": jax.default_backend(), "rows": FLAGS.rows, "hidden": FLAGS.hidden,
      "vocab": FLAGS.vocab, "ms_median": {k: 1e3 * v for k, v in medians.items()},
      "ms_repeats": {k: [1e3 * t for t in v] for k, v in times.items()},
      "speedup": medians["plain"] / medians["jaxbert"],
      "max_grad_difference": max_diff, "hits_equal": int(hits) == int(jhits),
      "malloc_keeps_freed_memory": kept,
      "command": " ".join(sys.argv)}))


if __name__ == "__main__":
  app.run(main)
