"""Train-step throughput of a config, data loading excluded: tokens/s, step time, TFLOP/s.

  python benchmarks/throughput.py --config=configs/quick.py [--config.model.num_layers=2 ...]

Times the same jitted step the trainer runs, on batches masked once up front, after one warm-up
(compile) call; prints one JSON object. The FLOP count per token is model.flops_per_token.
"""

import json
import statistics
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Python config file.", lock_config=True)
flags.DEFINE_integer("steps", 10, "timed steps")
flags.DEFINE_integer("accumulation", 1, "micro-batches per step")
FLAGS = flags.FLAGS


def main(_):
  from jaxbert import config as config_lib
  from jaxbert import masking, state, train
  from jaxbert.data import loader
  from jaxbert.model import count_params, flops_per_token

  config = config_lib.resolve(FLAGS.config)
  c = config.train
  rng = np.random.default_rng(0)
  rows = rng.integers(5, config.model.vocab_size, (c.micro_batch * FLAGS.accumulation * 4,
                                                   config.data.seq_len))
  it = iter(loader.pretraining_batches(rows, seed=0, batch_size=c.micro_batch,
                                       mask_rate=config.data.mask_rate,
                                       vocab_size=config.model.vocab_size, threads=1))
  batches = [jax.tree.map(lambda *x: np.stack(x), *[next(it) for _ in range(FLAGS.accumulation)])
             for _ in range(2)]
  model, tx, init = state.build(config)
  s = jax.jit(init)(state.init_key(config))
  step = train.make_train_step(model, tx, config)
  s, m = step(s, batches[0], np.float32(0.5))
  jax.block_until_ready(m)
  times = []
  for i in range(FLAGS.steps):
    start = time.perf_counter()
    s, m = step(s, batches[i % 2], np.float32(0.5))
    jax.block_until_ready(m)
    times.append(time.perf_counter() - start)
  tokens = c.micro_batch * FLAGS.accumulation * config.data.seq_len
  median = statistics.median(times)
  flops = flops_per_token(model.config, masking.num_masked(config.data.mask_rate,
                                                           config.data.seq_len))
  print(json.dumps({
      "backend": jax.default_backend(), "device": str(jax.devices()[0]),
      "params": count_params(s.params), "dtype": config.model.dtype,
      "tokens_per_step": tokens, "step_s_median": median, "tokens_per_s": tokens / median,
      "gflop_per_token": flops / 1e9, "tflops_per_s": flops * tokens / median / 1e12,
      "model": config.model.to_dict(), "micro_batch": c.micro_batch,
      "accumulation": FLAGS.accumulation}))


if __name__ == "__main__":
  app.run(main)
