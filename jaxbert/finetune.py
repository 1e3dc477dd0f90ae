"""Fine-tune a pretrained checkpoint on labelled tasks, beside three baselines; the GLUE protocol.

  from jaxbert import finetune
  finetune.run("workdirs/quick", finetune.default_config())     # the table, WORKDIR/finetune.json
  finetune.glue("workdirs/day", cfg)   # GLUE tasks of cfg.task, + average: WORKDIR/finetune/glue.*

Every task is scored for four models trained on the same split: the pretrained encoder, the same
architecture from random init (no pretraining), a small CNN on the same tokens and a bag-of-words
linear model, so the value of pretraining is visible. Scores are on the dev split(s); each neural
fine-tune is repeated over seeds and the median of each score reported, as in the cramming paper,
since small-data fine-tuning varies a lot from seed to seed.
"""

import functools
import json
import os
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxbert import baselines, checkpoint, data, metrics, optim, scores
from jaxbert import config as config_lib
from jaxbert import state as state_lib
from jaxbert.config import ConfigError
from jaxbert.data import glue as glue_lib
from jaxbert.data import tasks as tasks_lib
from jaxbert.model import Encoder, ModelConfig

MODELS = ("pretrained", "no_pretraining", "cnn", "bag_of_words")
HEADERS = {"pretrained": "pretrained", "no_pretraining": "no pretraining", "cnn": "CNN",
           "bag_of_words": "bag of words"}


def default_config() -> ml_collections.ConfigDict:
  """The `finetune` part of the config tree (fields and comments in jaxbert/config.py)."""
  return config_lib.default().finetune


class Classifier(nn.Module):
  """The pretraining encoder with a dense layer on a pooled vector of its outputs.

  num_outputs: the number of classes, or 1 for a regression head (trained with squared error).
  pooling: "first", the [CLS] position as in BERT; or "mean", the average over the example's
    tokens (padding left out). Our pretraining rows hold no [CLS], so after a short cram its
    output has learned nothing yet, while every other position has.
  """
  config: ModelConfig
  num_outputs: int
  pooling: str = "first"

  @nn.compact
  def __call__(self, tokens, mask, deterministic=True):
    c = self.config
    x = Encoder(c, name="encoder")(tokens, attention_mask=mask, deterministic=deterministic)
    if self.pooling == "mean":
      w = mask.astype(jnp.float32)[..., None]
      x = (x.astype(jnp.float32) * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
    else:
      x = x[:, 0]
    x = nn.Dropout(c.dropout)(x, deterministic=deterministic)
    return nn.Dense(self.num_outputs, kernel_init=nn.initializers.normal(c.init_std),
                    param_dtype=jnp.float32, name="head")(x.astype(jnp.float32))


def _truncate(la: int, lb: int, room: int) -> tuple[int, int]:
  """Lengths kept of a pair: the longer side is cut first, so both sides keep tokens."""
  if la + lb <= room:
    return la, lb
  if la >= lb:
    keep_b = min(lb, room // 2)
    return room - keep_b, keep_b
  keep_a = min(la, room // 2)
  return keep_a, room - keep_a


def encode(tokenizer, text_a, max_len: int, text_b=None):
  """(tokens, mask, cut): int32 [N, max_len] each, padded with PAD_ID, and how many of the N
  examples lost tokens to max_len.

  Single texts are [CLS] a [SEP]; pairs [CLS] a [SEP] b [SEP], the [SEP]-joined sentences the
  encoder saw in pretraining. Pairs are truncated longest side first.
  """
  n = len(text_a)
  tokens = np.full((n, max_len), data.PAD_ID, np.int32)
  mask = np.zeros((n, max_len), np.int32)
  enc_a = tokenizer.encode_batch(list(text_a), add_special_tokens=False)
  enc_b = (tokenizer.encode_batch(list(text_b), add_special_tokens=False) if text_b is not None
           else [None] * n)
  cut = 0
  for i, (a, b) in enumerate(zip(enc_a, enc_b)):
    if b is None:
      ids = [data.CLS_ID, *a.ids[: max_len - 2], data.SEP_ID]
      cut += len(a.ids) > max_len - 2
    else:
      ka, kb = _truncate(len(a.ids), len(b.ids), max_len - 3)
      ids = [data.CLS_ID, *a.ids[:ka], data.SEP_ID, *b.ids[:kb], data.SEP_ID]
      cut += (ka, kb) != (len(a.ids), len(b.ids))
    tokens[i, : len(ids)], mask[i, : len(ids)] = ids, 1
  return tokens, mask, cut


def load_pretrained(workdir: str):
  """(resolved config, encoder params, checkpoint step) of the workdir's latest checkpoint."""
  config, _, params, meta = state_lib.restore(workdir)
  return config, params["encoder"], meta["step"]


def trainer(model, cfg, num_train: int, regression: bool = False, lr: float | None = None):
  """(batch size, steps per epoch, jitted init, jitted train step, jitted predict) for a task.

  Built once per model and task shape and kept, so every seed, and tasks of the same size, reuse
  one compiled step. `model` is called as model(tokens, mask, deterministic) and returns
  [B, outputs]; `lr` defaults to cfg.lr.
  """
  keys = ("batch_size", "epochs", "lr", "warmup", "b1", "b2", "eps", "weight_decay")
  return _trainer(model, tuple(cfg[k] for k in keys), num_train, regression,
                  cfg.lr if lr is None else lr)


@functools.lru_cache(maxsize=16)
def _trainer(model, settings, num_train, regression, lr):
  batch_size, epochs, _, warmup, b1, b2, eps, weight_decay = settings
  batch = min(batch_size, num_train)
  per_epoch = num_train // batch  # the remainder differs per epoch, so no example is left out
  total = epochs * per_epoch
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, lr, warmup_steps=round(warmup * total), decay_steps=total)
  tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                   mask=optim.decay_mask)

  @jax.jit
  def init(key, tokens, mask, encoder_params):
    # One compiled init: op-by-op init of a model costs dozens of small compiles.
    params = model.init({"params": key}, tokens, mask)["params"]
    if encoder_params is not None:  # copied into new buffers, which the train step may donate
      params = {**params, "encoder": encoder_params}
    return params, tx.init(params)

  def loss_fn(params, batch, key):
    out = model.apply({"params": params}, batch["tokens"], batch["mask"],
                      deterministic=False, rngs={"dropout": key})
    if regression:
      return jnp.mean((out[:, 0] - batch["label"]) ** 2)
    return optax.softmax_cross_entropy_with_integer_labels(out, batch["label"]).mean()

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_step(carry, batch, key):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  @jax.jit
  def predict(params, tokens, mask):
    out = model.apply({"params": params}, tokens, mask)
    return out[:, 0] if regression else jnp.argmax(out, axis=-1)

  return batch, per_epoch, init, train_step, predict


def finetune(model, steps, encoder_params, train, devs: dict, cfg, seed: int) -> dict:
  """Dev predictions {split: array} of one fine-tune. `encoder_params` None: random init.

  `steps` is `trainer(...)`; train is (tokens, mask, labels), devs {split: (tokens, mask)}.
  Everything random derives from `seed`: the head (and random encoder) init, the example order,
  the dropout masks.
  """
  batch, per_epoch, init, train_step, predict = steps
  key = jax.random.key(seed)
  tokens, mask, labels = train
  carry = init(jax.random.fold_in(key, 0), tokens[:1], mask[:1], encoder_params)
  # Committed to the device either way: a restored encoder is, a random init would not be, and
  # jit compiles a step anew for each; one compiled step serves both.
  carry, step = jax.device_put(carry, jax.devices()[0]), 0
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
  return {name: _predict_all(predict, carry[0], dev, cfg.eval_batch_size)
          for name, dev in devs.items()}


def _predict_all(predict, params, arrays, batch):
  tokens, mask = arrays
  n = len(tokens)
  pad = -n % batch  # padded to whole batches: one compiled shape
  tokens, mask = (np.concatenate([a, np.zeros((pad, a.shape[1]), a.dtype)]) for a in (tokens, mask))
  mask[n:, 0] = 1  # an all-masked padding row would make attention divide by zero
  out = [np.asarray(predict(params, tokens[s:s + batch], mask[s:s + batch]))
         for s in range(0, len(tokens), batch)]
  return np.concatenate(out)[:n]


def score(task, predictions: dict) -> dict:
  """{column: score} of dev predictions {split: array}, every metric on every dev split."""
  return {tasks_lib.column(split, m): scores.SCORES[m](predictions[split], task.dev[split].labels)
          for split in task.dev for m in task.metrics}


def aggregate(per_seed: list[dict]) -> tuple[dict, dict]:
  """({column: median over seeds}, {column: [score per seed]}) of per-seed score dicts.

  Each column's median is taken on its own (MRPC's median F1 and median accuracy may come from
  different seeds), as the cramming paper reports medians per metric.
  """
  lists = {c: [s[c] for s in per_seed] for c in per_seed[0]}
  return {c: float(statistics.median(v)) for c, v in lists.items()}, lists


def _check(cfg, model_max_len: int) -> int:
  max_len = cfg.max_len or model_max_len
  if not 3 <= max_len <= model_max_len:
    raise ConfigError(f"finetune.max_len={cfg.max_len} must be in [3, model.max_len="
                      f"{model_max_len}] of the checkpoint (0 = the model's)")
  if cfg.pooling not in ("first", "mean"):
    raise ConfigError(f"finetune.pooling={cfg.pooling!r}: use \"first\" or \"mean\"")
  if cfg.seeds < 1 or cfg.epochs < 1:
    raise ConfigError(f"finetune.seeds={cfg.seeds} and finetune.epochs={cfg.epochs} must be "
                      ">= 1")
  return max_len


def run_task(task, tokenizer, model_config: ModelConfig, encoder_params, cfg, max_len: int):
  """Rows {task, metric, <model>: median, <model>_seeds: [...]} of one task, one per column."""
  train = task.train
  if 0 < cfg.max_train_examples < len(train):
    train = train.subset(np.sort(
        np.random.default_rng(0).permutation(len(train))[: cfg.max_train_examples]))
  if task.pair and max_len < 5:
    raise ConfigError(f"finetune.max_len={max_len} leaves no room for a pair: [CLS] a [SEP] b "
                      "[SEP] needs 5 tokens or more")
  tokens, mask, cut = encode(tokenizer, train.text_a, max_len, train.text_b)
  arrays = (tokens, mask, train.labels)
  if cut:
    # Cut texts lose words the bag-of-words baseline still sees, so say how many.
    more = (f"finetune.max_len up to the model's {model_config.max_len} keeps more"
            if max_len < model_config.max_len else "the model takes no more")
    print(f"[finetune] {task.name}: {cut} of {len(train)} training examples "
          f"({100 * cut / len(train):.0f}%) are longer than finetune.max_len={max_len} tokens and "
          f"lose their ends; {more}", flush=True)
  devs = {name: encode(tokenizer, s.text_a, max_len, s.text_b)[:2]
          for name, s in task.dev.items()}

  classifier = Classifier(model_config, task.num_outputs, cfg.pooling)
  cnn = baselines.TextCNN(model_config.vocab_size, cfg.cnn_embed, cfg.cnn_filters,
                          task.num_outputs, cfg.cnn_dropout)
  runs = {  # name -> (model, compiled steps, encoder params)
      "pretrained": (classifier, trainer(classifier, cfg, len(train), task.regression),
                     encoder_params),
      "no_pretraining": (classifier, None, None),
      "cnn": (cnn, trainer(cnn, cfg, len(train), task.regression, cfg.cnn_lr), None),
  }
  if not cfg.baselines:
    runs = {"pretrained": runs["pretrained"]}
  per_seed = {name: [] for name in runs}
  for seed in range(cfg.seeds):
    for name, (model, steps, params) in runs.items():
      steps = steps or runs["pretrained"][1]
      per_seed[name].append(score(task, finetune(model, steps, params, arrays, devs, cfg, seed)))
      shown = ", ".join(f"{c} {v:.4f}" for c, v in per_seed[name][-1].items())
      print(f"[finetune] {task.name} seed {seed} {name}: {shown}", flush=True)
  medians = {name: aggregate(s) for name, s in per_seed.items()}
  bow = score(task, baselines.bag_of_words(task, train, cfg)) if cfg.baselines else None
  rows = []
  for split in task.dev:
    for m in task.metrics:
      c = tasks_lib.column(split, m)
      row = dict(task=task.name, metric=c, in_average=c in task.headline)
      for name in runs:
        row[name], row[name + "_seeds"] = medians[name][0][c], medians[name][1][c]
      if bow is not None:
        row["bag_of_words"] = bow[c]
      row.update(train_examples=len(train), train_examples_cut=cut,
                 dev_examples=len(task.dev[split]))
      rows.append(row)
  return rows


def table(rows: list[dict], percent: bool = False) -> str:
  """Markdown: one line per (task, metric), a column per model; seed min–max in brackets."""
  def cell(r, key):
    k = 100 if percent else 1
    fmt = (lambda v: f"{k * v:.1f}") if percent else (lambda v: f"{v:.4f}")
    seeds = r.get(key + "_seeds") or []
    spread = f" ({fmt(min(seeds))}–{fmt(max(seeds))})" if len(seeds) > 1 else ""
    return fmt(r[key]) + spread
  models = _present(rows)
  lines = ["| task | metric | " + " | ".join(HEADERS[m] for m in models) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in models) + " |"]
  lines += [f"| {r['task']} | {r['metric']} | " + " | ".join(cell(r, m) for m in models) + " |"
            for r in rows]
  return "\n".join(lines)


def glue_average(rows: list[dict]) -> dict:
  """{model: mean of the rows marked in_average}, as the cramming paper averages GLUE.

  The paper's GLUE column is the plain mean of nine numbers: MNLI matched and mismatched as two
  entries, then one per other task (Matthews for CoLA, F1 for MRPC and QQP, Pearson for STS-B,
  accuracy for the rest; GLUE lists F1 and Pearson first for those tasks). WNLI is left out.
  """
  chosen = [r for r in rows if r["in_average"]]
  return {m: float(np.mean([r[m] for r in chosen])) if chosen else float("nan")
          for m in _present(rows)}


def _present(rows: list[dict]) -> list[str]:
  """The MODELS every row scores (the pretrained one alone under finetune.baselines=False)."""
  return [m for m in MODELS if all(m in r for r in rows)]


def _settings(task_cfg) -> ml_collections.ConfigDict:
  cfg = default_config()
  cfg.lock()
  cfg.update(task_cfg or {})  # an unknown field is a KeyError, not a silent default
  return cfg


def _run_all(workdir: str, cfg) -> dict:
  start = time.time()
  task_list = tasks_lib.load(cfg.task, cfg)
  config, encoder_params, step = load_pretrained(workdir)
  max_len = _check(cfg, config.model.max_len)
  store = checkpoint.token_store(config, workdir)
  checkpoint.check_tokenizer(workdir, store.tokenizer_path)
  tokenizer = store.tokenizer()
  model_config = ModelConfig.from_dict({**config.model.to_dict(), "dropout": cfg.dropout})
  rows = []
  for task in task_list:
    rows += run_task(task, tokenizer, model_config, encoder_params, cfg, max_len)
  for row in rows:
    metrics.write(workdir, {"kind": "finetune", "step": step, "checkpoint_step": step, **row})
  return dict(task=cfg.task, checkpoint_step=step, seeds=cfg.seeds, rows=rows,
              seconds=round(time.time() - start, 1), config=cfg.to_dict())


def run(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """Fine-tunes the latest checkpoint and the baselines on every task of finetune.task.

  Prints the table and writes it to WORKDIR/finetune.json and as "finetune" lines of
  metrics.jsonl (one per task and metric).
  """
  cfg = _settings(task_cfg)
  result = _run_all(workdir, cfg)
  result["table"] = table(result["rows"])
  path = os.path.join(workdir, "finetune.json")
  with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
  os.replace(path + ".tmp", path)
  _print(result)
  return result


def _print(result):
  print(f"fine-tuned checkpoint step {result['checkpoint_step']} on {result['task']}; dev scores, "
        f"median of {result['seeds']} seed(s) (min–max):\n{result['table']}", flush=True)


def after_training(workdir: str, task_cfg: ml_collections.ConfigDict) -> dict:
  """run() once per checkpoint step and settings: rerunning a finished run's command prints the
  table it already made instead of fine-tuning again."""
  cfg = _settings(task_cfg)
  with checkpoint.Checkpoints(workdir, writer=False) as ckpts:
    step = ckpts.latest_step()
  path = os.path.join(workdir, "finetune.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if (previous.get("checkpoint_step"), previous.get("config")) == (step, cfg.to_dict()) \
        and "table" in previous:
      _print(previous)
      return previous
  return run(workdir, task_cfg)


def glue(workdir: str, task_cfg: ml_collections.ConfigDict | None = None) -> dict:
  """The GLUE-sane protocol: every GLUE task of finetune.task, the table and the average.

  Writes WORKDIR/finetune/glue.md and glue.json. The average is comparable to the paper's only
  when all eight tasks ran; otherwise it is labelled with the tasks it covers.
  """
  cfg = _settings(task_cfg)
  if not cfg.task.startswith(("glue:", "tfds:")):
    raise ConfigError(f"--mode=glue runs GLUE tasks: finetune.task={cfg.task!r} must be "
                      "'glue:DIR[:TASK,...]' or 'tfds:glue[/TASK,...]'")
  result = _run_all(workdir, cfg)
  present = sorted({r["task"] for r in result["rows"]})
  result["average"] = glue_average(result["rows"])
  result["complete"] = set(present) == set(glue_lib.TASKS)
  label = ("GLUE average (8 tasks, MNLI m and mm counted apart)" if result["complete"] else
           f"average over {', '.join(present)} only: not a GLUE score")
  md = "\n".join([
      f"# GLUE dev scores of checkpoint step {result['checkpoint_step']}",
      "",
      f"Median of {cfg.seeds} fine-tuning seed(s) (min–max), in percent; epochs {cfg.epochs}, "
      f"batch {cfg.batch_size}, lr {cfg.lr}, warmup {cfg.warmup}, AdamW ({cfg.b1}, {cfg.b2}, "
      f"{cfg.eps}), max length {cfg.max_len or 'of the model'}.",
      "",
      table(result["rows"], percent=True),
      "",
      f"{label}: " + ", ".join(f"{HEADERS[m]} {100 * v:.1f}"
                               for m, v in result["average"].items()),
      ""])
  out = os.path.join(workdir, "finetune")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "glue.md"), "w") as f:
    f.write(md)
  with open(os.path.join(out, "glue.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(md, flush=True)
  return result
