"""Train-step throughput of a config, data loading excluded: tokens/s, step time, TFLOP/s, MFU.

  python benchmarks/throughput.py --config=configs/quick.py [--config.model.num_layers=2 ...]
  python benchmarks/throughput.py --config=... --compare=hf     # Hugging Face's BERT alongside

Times the same jitted step the trainer runs, on batches masked once up front, after one warm-up
(compile) call; prints one JSON object. Each repeat times --steps steps; the figure is the median
step time over repeats (and over steps within a repeat).

FLOPs per token are model.flops_per_token: 6 × matmul params of the encoder, plus attention's
6 × 2·L·H per layer, plus the MLM head on the positions it actually computes. jaxbert's sparse
head computes K = round(mask_rate × L) rows of each row of L tokens; Hugging Face's BERT computes
all L, and is counted so (its useful work is the same, its executed work larger). MFU is achieved
FLOP/s over --peak_tflops, when that is given.

--compare=hf runs, in this process and with the config's dimensions, alternating one repeat at a
time: jaxbert's step (the config's arch), jaxbert's original arch (BERT's layout under jaxbert's
implementation; only when the config is crammed), transformers' FlaxBertForMaskedLM under the
same optax chain (optim.make: clipping, AdamW, decay mask), and transformers' PyTorch
BertForMaskedLM with torch.optim.AdamW and the same clipping, decay mask and betas. Every one sees
the same masked batches, dropout off, float32 (or the config's dtype for the JAX ones;
--hf_dtypes times FlaxBertForMaskedLM in other dtypes too, each a system of its own).

On the CPU, malloc is tuned first as run.py tunes it (jaxbert/allocator.py: freed memory is kept
for reuse, not unmapped and faulted in again every step). It is a setting of the process, so the
Hugging Face systems run under it too; --nokeep_freed_memory times everything without it.
"""

import importlib.util
import json
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Python config file.", lock_config=True)
flags.DEFINE_integer("steps", 10, "timed steps per repeat")
flags.DEFINE_integer("repeats", 1, "repeats (each system once per repeat, alternating)")
flags.DEFINE_integer("accumulation", 1, "micro-batches per step")
flags.DEFINE_enum("compare", "none", ["none", "hf"], "also time Hugging Face's BERT")
flags.DEFINE_list("hf_dtypes", [], "--compare=hf: the dtypes to time FlaxBertForMaskedLM in "
                  "(default: the config's); e.g. float32,bfloat16 times both, named hf_flax for "
                  "the config's dtype and hf_flax_<dtype> for another")
flags.register_validator("hf_dtypes", lambda v: set(v) <= {"float32", "bfloat16"},
                         "--hf_dtypes takes float32 and/or bfloat16")
flags.DEFINE_float("peak_tflops", 0.0, "the device's peak FLOP/s (TFLOP/s) for MFU; 0 = no MFU")
flags.DEFINE_bool("keep_freed_memory", True, "tune malloc as run.py does (jaxbert.allocator); "
                  "process-wide, so the Hugging Face systems run under it too")
FLAGS = flags.FLAGS


def _peak_device_bytes():
  stats = jax.devices()[0].memory_stats()  # None on the CPU backend
  return stats.get("peak_bytes_in_use") if stats else None


def _compiled_bytes(jitted, *args):
  """XLA's buffer plan of a jitted call: arguments, outputs and temporaries (activations).

  Only where the device keeps no memory statistics (the CPU): lowering and compiling here does
  not fill the jit's cache, so it costs a second compile, a minute for a large model on a GPU,
  where the measured peak is reported instead."""
  if _peak_device_bytes() is not None:
    return None
  try:
    m = jitted.lower(*args).compile().memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)
  except Exception:  # not every backend reports it
    return None


class Jaxbert:
  """jaxbert's own train step (pretrain/step.py) for a config."""

  def __init__(self, config, batches):
    from jaxbert import masking
    from jaxbert.model import count_params, flops_per_token
    from jaxbert.pretrain import state, step
    model, tx, init = state.build(config)
    self.state = jax.jit(init)(state.init_key(config))
    self.fn = step.make_train_step(model, tx, config)
    self.batches = [jax.device_put(b) for b in batches]
    self.t = np.float32(0.5)
    self.param_count = count_params(self.state.params)
    self.flops = flops_per_token(model.config, masking.num_masked(config.data.mask_rate,
                                                                  config.data.seq_len),
                                 config.data.seq_len)
    self.memory = _compiled_bytes(self.fn, self.state, self.batches[0], self.t)

  def step(self, i):
    self.state, m = self.fn(self.state, self.batches[i % 2], self.t)
    jax.block_until_ready(m)


def _hf_config(model_cfg):
  import transformers
  return transformers.BertConfig(
      vocab_size=model_cfg.vocab_size, hidden_size=model_cfg.hidden_size,
      num_hidden_layers=model_cfg.num_layers, num_attention_heads=model_cfg.num_heads,
      intermediate_size=model_cfg.ffn_size, max_position_embeddings=model_cfg.max_len,
      hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
      layer_norm_eps=model_cfg.layer_norm_eps, initializer_range=model_cfg.init_std)


def _dense_labels(batch):
  """[rows, L] targets at the predicted positions and a 0/1 weight mask: the dense-head form."""
  rows = np.arange(batch["inputs"].shape[0])[:, None]
  labels = np.zeros(batch["inputs"].shape, np.int32)
  weights = np.zeros(batch["inputs"].shape, np.float32)
  labels[rows, batch["positions"]] = batch["targets"]
  weights[rows, batch["positions"]] = batch["weights"]
  return labels, weights


def _hf_flops(model_cfg, seq_len):
  import dataclasses
  from jaxbert.model import flops_per_token
  return flops_per_token(dataclasses.replace(model_cfg, arch="original"), seq_len)  # dense head


class HFFlax:
  """transformers' FlaxBertForMaskedLM under jaxbert's optax chain, one jitted step."""

  def __init__(self, config, model_cfg, batches, dtype):
    import optax
    from transformers import FlaxBertForMaskedLM
    from jaxbert import optim
    from jaxbert.model import count_params
    if len(batches[0]["inputs"]) != 1:
      raise app.UsageError("--compare=hf times one micro-batch per step (--accumulation=1)")
    model = FlaxBertForMaskedLM(_hf_config(model_cfg), seed=config.seed,
                                dtype=jnp.dtype(dtype))
    tx = optim.make(config.optim)
    lr = optim.learning_rate(config.optim, 0.5)

    def loss_fn(params, inputs, labels, weights):
      logits = model(inputs, params=params, train=False).logits
      ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
      return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)

    def step(params, opt_state, inputs, labels, weights):
      loss, grads = jax.value_and_grad(loss_fn)(params, inputs, labels, weights)
      opt_state = optim.set_learning_rate(opt_state, lr)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    self.fn = jax.jit(step, donate_argnums=(0, 1))
    self.params = jax.device_put(model.params)
    self.opt_state = jax.jit(tx.init)(self.params)
    self.batches = [jax.device_put((b["inputs"][0], *_dense_labels(
        {k: v[0] for k, v in b.items()}))) for b in batches]
    self.param_count = count_params(self.params)
    self.flops = _hf_flops(model_cfg, config.data.seq_len)
    self.memory = _compiled_bytes(self.fn, self.params, self.opt_state, *self.batches[0])

  def step(self, i):
    self.params, self.opt_state, loss = self.fn(self.params, self.opt_state, *self.batches[i % 2])
    jax.block_until_ready(loss)


class HFTorch:
  """transformers' PyTorch BertForMaskedLM with torch.optim.AdamW, eager, on the CPU."""

  def __init__(self, config, model_cfg, batches):
    import torch
    from transformers import BertForMaskedLM
    torch.manual_seed(config.seed)
    o = config.optim
    self.torch = torch
    self.model = BertForMaskedLM(_hf_config(model_cfg)).train()  # dropout is 0 in the config
    params = list(self.model.named_parameters())
    decay = [p for n, p in params if p.ndim >= 2 and "bias" not in n]  # optim.decay_mask's rule
    rest = [p for n, p in params if not (p.ndim >= 2 and "bias" not in n)]
    self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                  {"params": rest, "weight_decay": 0.0}],
                                 lr=float(o.peak_lr), betas=(o.b1, o.b2), eps=o.eps)
    self.clip = o.clip_norm
    self.batches = []
    for b in batches:
      labels, weights = _dense_labels({k: v[0] for k, v in b.items()})
      labels = np.where(weights > 0, labels, -100)  # transformers' ignore index
      self.batches.append((torch.from_numpy(np.asarray(b["inputs"][0], np.int64)),
                           torch.from_numpy(labels.astype(np.int64))))
    self.param_count = sum(p.numel() for p in self.model.parameters())  # tied: counted once
    self.flops = _hf_flops(model_cfg, config.data.seq_len)
    self.memory = None

  def step(self, i):
    inputs, labels = self.batches[i % 2]
    loss = self.model(input_ids=inputs, labels=labels).loss
    loss.backward()
    if self.clip > 0:
      self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
    self.opt.step()
    self.opt.zero_grad(set_to_none=True)


def _time(systems, steps, repeats):
  """{name: [median step seconds of each repeat]}: one repeat of every system in turn."""
  for s in systems.values():
    s.step(0)  # compile / warm up
    s.step(1)
  times = {name: [] for name in systems}
  for _ in range(repeats):
    for name, s in systems.items():
      per_step = []
      for i in range(steps):
        start = time.perf_counter()
        s.step(i)
        per_step.append(time.perf_counter() - start)
      times[name].append(statistics.median(per_step))
  return times


def main(_):
  from jaxbert import config as config_lib
  from jaxbert.cpu import allocator
  from jaxbert.data import loader

  kept = FLAGS.keep_freed_memory and allocator.keep_freed_memory()  # before jax's backend starts

  os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the HF models are built from a config here
  os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
  config = config_lib.resolve(FLAGS.config)
  c = config.train
  if c.micro_batch == 0:  # as the trainer does: the most rows whose compiled step fits
    from jaxbert.pretrain import loop, microbatch, parallel, state
    from jaxbert.pretrain import step as step_lib
    model, tx, init = state.build(config)
    abstract, state_sharding, batch_sharding = loop.layout(config, init, parallel.make_mesh())
    step = step_lib.make_train_step(model, tx, config, (state_sharding, batch_sharding))
    c.micro_batch = microbatch.choose(step, config, abstract, batch_sharding)[0]
  rng = np.random.default_rng(0)
  rows = rng.integers(5, config.model.vocab_size, (c.micro_batch * FLAGS.accumulation * 4,
                                                   config.data.seq_len))
  it = iter(loader.pretraining_batches(rows, seed=0, batch_size=c.micro_batch,
                                       mask_rate=config.data.mask_rate,
                                       vocab_size=config.model.vocab_size, threads=1))
  batches = [jax.tree.map(lambda *x: np.stack(x), *[next(it) for _ in range(FLAGS.accumulation)])
             for _ in range(2)]
  from jaxbert.model import ModelConfig
  model_cfg = ModelConfig.from_dict(config.model)

  systems = {"jaxbert": Jaxbert(config, batches)}
  if FLAGS.compare == "hf":
    if model_cfg.arch == "crammed":
      original = config_lib.resolve(config)
      original.model.arch = "original"
      systems["jaxbert_original"] = Jaxbert(original, batches)
    for dtype in FLAGS.hf_dtypes or [model_cfg.dtype]:
      name = "hf_flax" if dtype == model_cfg.dtype else f"hf_flax_{dtype}"
      systems[name] = HFFlax(config, model_cfg, batches, dtype)
    if importlib.util.find_spec("torch") is not None:  # a GPU machine may have jax alone
      systems["hf_torch"] = HFTorch(config, model_cfg, batches)
  times = _time(systems, FLAGS.steps, FLAGS.repeats)

  tokens = c.micro_batch * FLAGS.accumulation * config.data.seq_len
  results = {}
  for name, s in systems.items():
    median = statistics.median(times[name])
    tflops = s.flops * tokens / median / 1e12
    results[name] = {
        "params": s.param_count, "tokens_per_step": tokens,
        "step_s_median": median, "step_s_repeats": times[name], "tokens_per_s": tokens / median,
        "gflop_per_token": s.flops / 1e9, "tflops_per_s": tflops,
        "mfu": tflops / FLAGS.peak_tflops if FLAGS.peak_tflops > 0 else None,
        "compiled_memory_mb": None if s.memory is None else s.memory / 2**20}
  common = {"backend": jax.default_backend(), "device": str(jax.devices()[0]),
            "device_kind": jax.devices()[0].device_kind, "dtype": config.model.dtype,
            "model": config.model.to_dict(), "micro_batch": c.micro_batch,
            "accumulation": FLAGS.accumulation, "seq_len": config.data.seq_len,
            "steps": FLAGS.steps, "repeats": FLAGS.repeats, "peak_tflops": FLAGS.peak_tflops,
            "malloc_keeps_freed_memory": kept,
            # Whole process, every system included: device peak (GPU) and host resident set.
            "peak_device_memory_mb": (lambda b: None if b is None else b / 2**20)(
                _peak_device_bytes()),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "command": " ".join(sys.argv)}
  if FLAGS.compare == "none":
    print(json.dumps({**common, **results["jaxbert"]}))
    return
  ratios = {f"jaxbert_over_{other}": results["jaxbert"]["tokens_per_s"] /
            results[other]["tokens_per_s"] for other in results if other != "jaxbert"}
  if "jaxbert_original" in results:
    ratios.update({f"jaxbert_original_over_{other}": results["jaxbert_original"]["tokens_per_s"] /
                   results[other]["tokens_per_s"] for other in results
                   if other.startswith("hf_")})
  import transformers
  versions = {"jax": jax.__version__, "transformers": transformers.__version__}
  if "hf_torch" in systems:
    versions.update(torch=systems["hf_torch"].torch.__version__,
                    torch_threads=systems["hf_torch"].torch.get_num_threads())
  print(json.dumps({**common, "versions": versions, "systems": results, "ratios": ratios}))


if __name__ == "__main__":
  app.run(main)
