"""Fine-tune a pretrained checkpoint on a labelled task, beside two baselines.

  from jaxbert import finetune
  finetune.run("workdirs/quick", finetune.default_config())

The same architecture from random init (no pretraining) and a bag-of-words logistic regression
are scored with the same data, so the value of pretraining is visible. Scores are on the dev
split; each fine-tune is repeated over seeds and the median reported, as in the cramming paper,
since small-data fine-tuning varies a lot from seed to seed.
"""

import collections
import functools
import json
import os
import re
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxbert import data, metrics, optim
from jaxbert import config as config_lib
from jaxbert import state as state_lib
from jaxbert.config import ConfigError
from jaxbert.data import tasks
from jaxbert.model import Encoder, ModelConfig


def default_config() -> ml_collections.ConfigDict:
  """The `finetune` part of the config tree (fields and comments in jaxbert/config.py)."""
  return config_lib.default().finetune


class Classifier(nn.Module):
  """The pretraining encoder with a dense layer on the first ([CLS]) position."""
  config: ModelConfig
  num_labels: int

  @nn.compact
  def __call__(self, tokens, mask, deterministic=True):
    c = self.config
    x = Encoder(c, name="encoder")(tokens, attention_mask=mask, deterministic=deterministic)
    x = nn.Dropout(c.dropout)(x[:, 0], deterministic=deterministic)
    return nn.Dense(self.num_labels, kernel_init=nn.initializers.normal(c.init_std),
                    param_dtype=jnp.float32, name="head")(x.astype(jnp.float32))


def accuracy(predictions, labels) -> float:
  return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def encode(tokenizer, texts, max_len: int):
  """(tokens, mask) int32 [N, max_len]: [CLS] text [SEP], truncated, then padded with PAD_ID."""
  tokens = np.full((len(texts), max_len), data.PAD_ID, np.int32)
  mask = np.zeros((len(texts), max_len), np.int32)
  for i, enc in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
    ids = [data.CLS_ID, *enc.ids[: max_len - 2], data.SEP_ID]
    tokens[i, : len(ids)], mask[i, : len(ids)] = ids, 1
  return tokens, mask


def load_pretrained(workdir: str):
  """(resolved config, encoder params, checkpoint step) of the workdir's latest checkpoint."""
  config, _, params, meta = state_lib.restore(workdir)
  return config, params["encoder"], meta["step"]


def trainer(model, cfg, num_train: int):
  """(batch size, steps per epoch, optimizer, jitted train step, jitted predict) for a task.

  Built once per run, so every seed and both encoders reuse one compiled step.
  """
  batch = min(cfg.batch_size, num_train)
  per_epoch = num_train // batch  # the remainder differs per epoch, so no example is left out
  total = cfg.epochs * per_epoch
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, cfg.lr, warmup_steps=round(cfg.warmup * total), decay_steps=total)
  tx = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                   mask=optim.decay_mask)

  def loss_fn(params, batch, key):
    logits = model.apply({"params": params}, batch["tokens"], batch["mask"],
                         deterministic=False, rngs={"dropout": key})
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_step(carry, batch, key):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  @jax.jit
  def predict(params, tokens, mask):
    return jnp.argmax(model.apply({"params": params}, tokens, mask), axis=-1)

  return batch, per_epoch, tx, train_step, predict


def finetune(model, steps, encoder_params, train, dev, cfg, seed: int) -> float:
  """Dev score of one fine-tune. `encoder_params` None: the encoder keeps its random init.

  `steps` is `trainer(...)`; train and dev are (tokens, mask, labels) arrays. Everything random
  derives from `seed`: the head (and random encoder) init, the example order, the dropout masks.
  """
  batch, per_epoch, tx, train_step, predict = steps
  key = jax.random.key(seed)
  tokens, mask, labels = train
  params = model.init({"params": jax.random.fold_in(key, 0)}, tokens[:1], mask[:1])["params"]
  if encoder_params is not None:  # a copy: the train step donates its input buffers
    params = {**params, "encoder": jax.tree_util.tree_map(jnp.array, encoder_params)}
  carry, step = (params, tx.init(params)), 0
  for epoch in range(cfg.epochs):
    order = np.random.default_rng([seed, epoch]).permutation(len(labels))
    for b in range(per_epoch):
      i = order[b * batch: (b + 1) * batch]
      dropout_key = jax.random.fold_in(jax.random.fold_in(key, 1), step)
      carry, loss = train_step(carry, dict(tokens=tokens[i], mask=mask[i], label=labels[i]),
                               dropout_key)
      step += 1
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f"fine-tuning loss is {float(loss)} at the end (seed {seed}); "
                             "lower the learning rate")
  return accuracy(_predict_all(predict, carry[0], dev[:2], cfg.eval_batch_size), dev[2])


def _predict_all(predict, params, arrays, batch):
  tokens, mask = arrays
  n = len(tokens)
  pad = -n % batch  # padded to whole batches: one compiled shape
  tokens, mask = (np.concatenate([a, np.zeros((pad, a.shape[1]), a.dtype)]) for a in (tokens, mask))
  mask[n:, 0] = 1  # an all-masked padding row would make attention divide by zero
  out = [np.asarray(predict(params, tokens[s:s + batch], mask[s:s + batch]))
         for s in range(0, len(tokens), batch)]
  return np.concatenate(out)[:n]


def _words(text: str) -> set[str]:
  return set(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))


def bag_of_words(train, dev, num_labels: int, cfg) -> float:
  """Dev score of an L2 logistic regression on binary word features (words seen twice in train).

  Each example is its padded list of distinct word ids, so the model is a sum of weight rows:
  the same as a dense binary vector times W, without the [examples, vocabulary] matrix.
  """
  counts = collections.Counter(w for text, _ in train for w in _words(text))
  vocab = {w: i for i, w in enumerate(sorted(w for w, n in counts.items() if n >= 2))}

  def features(examples):
    ids = [[vocab[w] for w in sorted(_words(t)) if w in vocab] for t, _ in examples]
    out = np.full((len(ids), max(map(len, ids), default=0) + 1), -1, np.int32)
    for row, x in zip(out, ids):
      row[: len(x)] = x
    return out, np.array([y for _, y in examples], np.int32)

  (x, y), (dev_x, dev_y) = features(train), features(dev)
  params = dict(w=jnp.zeros((len(vocab) + 1, num_labels)), b=jnp.zeros(num_labels))

  def logits(p, ids):  # id -1 (padding) picks the last row, which `where` then zeroes
    return jnp.where(ids[..., None] >= 0, p["w"][ids], 0.0).sum(1) + p["b"]

  def loss_fn(p):
    ce = optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()
    return ce + 0.5 * cfg.bow_l2 * jnp.sum(p["w"] ** 2)

  tx = optax.adam(cfg.bow_lr)

  @jax.jit
  def fit(p):
    def step(carry, _):
      p, s = carry
      grads = jax.grad(loss_fn)(p)
      updates, s = tx.update(grads, s)
      return (optax.apply_updates(p, updates), s), None
    return jax.lax.scan(step, (p, tx.init(p)), None, length=cfg.bow_steps)[0][0]

  params = fit(params)
  return accuracy(np.argmax(logits(params, dev_x), -1), dev_y)


def _table(r: dict) -> str:
  def cell(key):
    seeds = r.get(key + "_seeds") or []
    spread = f" ({min(seeds):.4f}–{max(seeds):.4f})" if len(seeds) > 1 else ""
    return f"{r[key]:.4f}{spread}"
  return "\n".join([
      "| task | metric | pretrained | no pretraining | bag of words |",
      "| --- | --- | ---: | ---: | ---: |",
      f"| {r['task']} | {r['metric']} | {cell('pretrained')} | {cell('no_pretraining')} | "
      f"{cell('bag_of_words')} |",
  ])


def run(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """Fine-tunes the latest checkpoint and both baselines; records and prints the scores."""
  cfg = default_config()
  cfg.lock()
  cfg.update(task_cfg or {})  # an unknown field is a KeyError, not a silent default
  start = time.time()
  task = tasks.load(cfg.task)
  config, encoder_params, step = load_pretrained(workdir)
  if not 3 <= cfg.max_len <= config.model.max_len:
    raise ConfigError(f"finetune.max_len={cfg.max_len} must be in [3, model.max_len="
                      f"{config.model.max_len}] of the checkpoint")
  if cfg.seeds < 1 or cfg.epochs < 1:
    raise ConfigError(f"finetune.seeds={cfg.seeds} and finetune.epochs={cfg.epochs} must be "
                      ">= 1")
  train = task["train"]
  if 0 < cfg.max_train_examples < len(train):
    keep = np.random.default_rng(0).permutation(len(train))[: cfg.max_train_examples]
    train = [train[i] for i in sorted(keep)]
  tokenizer = data.prepare(config.data, config.model.vocab_size).tokenizer()
  arrays = {}
  for name, examples in (("train", train), ("dev", task["dev"])):
    tokens, mask = encode(tokenizer, [t for t, _ in examples], cfg.max_len)
    arrays[name] = tokens, mask, np.array([y for _, y in examples], np.int32)

  model = Classifier(ModelConfig.from_dict({**config.model.to_dict(), "dropout": cfg.dropout}),
                     task["num_labels"])
  steps = trainer(model, cfg, len(train))
  scores = {"pretrained": [], "no_pretraining": []}
  for seed in range(cfg.seeds):
    for name, enc in (("pretrained", encoder_params), ("no_pretraining", None)):
      scores[name].append(finetune(model, steps, enc, arrays["train"], arrays["dev"], cfg, seed))
      print(f"[finetune] {cfg.task} seed {seed} {name}: {task['metric']} "
            f"{scores[name][-1]:.4f}", flush=True)

  result = dict(task=cfg.task, metric=task["metric"], checkpoint_step=step,
                pretrained=statistics.median(scores["pretrained"]),
                no_pretraining=statistics.median(scores["no_pretraining"]),
                bag_of_words=bag_of_words(train, task["dev"], task["num_labels"], cfg),
                pretrained_seeds=scores["pretrained"],
                no_pretraining_seeds=scores["no_pretraining"],
                train_examples=len(train), dev_examples=len(task["dev"]),
                seconds=round(time.time() - start, 1))
  metrics.write(workdir, {"kind": "finetune", "step": step, **result})
  with open(os.path.join(workdir, "finetune.json"), "w") as f:
    json.dump({**result, "config": cfg.to_dict()}, f, indent=2)
  print(f"fine-tuned checkpoint step {step} on {len(train)} {cfg.task} examples; dev scores, "
        f"median of {cfg.seeds} seed(s) (min–max):\n{_table(result)}", flush=True)
  return result
