"""The fine-tuning loop: one compiled train step per model and task shape, seeded end to end.

`trainer` builds (and caches) the jitted init, step and predict of a model for a task; `finetune`
runs one seed of it and returns its dev outputs (class logits, or values for regression) and its
params. The models are the pretrained classifier,
the same from random init, and the CNN baseline: the only difference between their rows is the
model.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbert import optim

from .classifier import padded_index


def trainer(model, cfg, num_train: int, regression: bool = False, lr: float | None = None):
  """(batch size, steps per epoch, jitted init, jitted train step, jitted predict) for a task.

  Built once per model and task shape and kept, so every seed, and tasks of the same size, reuse
  one compiled step. `model` is called as model(tokens, mask, deterministic) and returns
  [B, outputs]; `lr` defaults to cfg.lr.
  """
  keys = ("batch_size", "epochs", "lr", "warmup", "b1", "b2", "eps", "weight_decay",
          "layer_lr_decay", "reinit_layers")
  return _trainer(model, tuple(cfg[k] for k in keys), num_train, regression,
                  cfg.lr if lr is None else lr)


@functools.lru_cache(maxsize=16)
def _trainer(model, settings, num_train, regression, lr):
  batch_size, epochs, _, warmup, b1, b2, eps, weight_decay, layer_lr_decay, reinit = settings
  batch = min(batch_size, num_train)
  per_epoch = num_train // batch  # the remainder differs per epoch, so no example is left out
  total = epochs * per_epoch
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, lr, warmup_steps=round(warmup * total), decay_steps=total)
  tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                   mask=optim.decay_mask)
  if layer_lr_decay != 1.0:
    tx = optax.chain(tx, layer_scale(layer_lr_decay))

  @jax.jit
  def init(key, tokens, mask, encoder_params, pooler_params=None):
    # One compiled init: op-by-op init of a model costs dozens of small compiles.
    params = model.init({"params": key}, tokens, mask)["params"]
    if encoder_params is not None:  # copied into new buffers, which the train step may donate
      # The top `reinit` layers keep their fresh init: the pretrained ones are the most specific
      # to the pretraining task (Zhang et al., ICLR 2021, "Revisiting few-sample BERT
      # fine-tuning").
      layers = sorted((k for k in encoder_params if k.startswith("layer_")),
                      key=lambda k: int(k[len("layer_"):]))
      fresh = set(layers[len(layers) - reinit:]) if reinit else set()
      params = {**params, "encoder": {k: params["encoder"][k] if k in fresh else v
                                      for k, v in encoder_params.items()}}
      # A model that pools through a pooler starts from the encoder's own, as BERT fine-tunes;
      # re-initialising the top layers re-initialises it too, as Zhang et al. do.
      if pooler_params is not None and "pooler" in params and not reinit:
        params = {**params, "pooler": pooler_params}
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
    out = model.apply({"params": params}, tokens, mask).astype(jnp.float32)
    return out[:, 0] if regression else out

  return batch, per_epoch, init, train_step, predict


def epochs_for(cfg, num_train: int) -> int:
  """finetune.epochs, or more for a small training set: enough passes that the run takes at
  least finetune.min_steps optimizer steps (100 examples at batch 16 are 6 steps an epoch)."""
  per_epoch = max(1, num_train // min(cfg.batch_size, num_train))
  return max(cfg.epochs, -(-cfg.min_steps // per_epoch))


def layer_scale(decay: float) -> optax.GradientTransformation:
  """Layer-wise learning-rate decay (Howard & Ruder, ACL 2018; Clark et al., ICLR 2020, ELECTRA):
  scales the updates of encoder layer i of L (0 = the lowest) by decay^(L - 1 - i) and of the
  embeddings by decay^L, so lower layers, which hold more general features, move less; the head,
  pooler and final norm train at the full rate. Applied after AdamW, so weight decay scales too,
  as a per-group learning rate would."""
  def factor(path, num_layers):
    names = [str(getattr(k, "key", k)) for k in path]
    if names[0] != "encoder" or len(names) < 2:
      return 1.0
    if names[1].startswith("layer_"):
      return decay ** (num_layers - 1 - int(names[1][len("layer_"):]))
    return decay ** num_layers if names[1] == "embeddings" else 1.0

  def update(updates, state, params=None):
    del params
    num_layers = sum(k.startswith("layer_") for k in updates.get("encoder", {}))
    return jax.tree_util.tree_map_with_path(
        lambda path, u: u * factor(path, num_layers), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def finetune(model, steps, encoder_params, train, devs: dict, cfg, seed: int, pooler=None):
  """({split: dev outputs}, params) of one fine-tune. `encoder_params` None: random init.
  `pooler`: the pooler that came with the encoder (an imported BERT's, workdir.pooler), which
  a model that pools through one starts from; None: a fresh one.

  Outputs are class logits [N, classes], or values [N] for regression (`labels` turns them into
  what a score compares).
  `steps` is `trainer(...)`; train is (tokens, mask, labels), devs {split: (tokens, mask)}.
  Everything random derives from `seed`: the head (and random encoder) init, the example order,
  the dropout masks.
  """
  batch, per_epoch, init, train_step, predict = steps
  key = jax.random.key(seed)
  tokens, mask, labels = train
  carry = init(jax.random.fold_in(key, 0), tokens[:1], mask[:1], encoder_params, pooler)
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
  return ({name: predict_all(predict, carry[0], dev, cfg.eval_batch_size)
           for name, dev in devs.items()}, carry[0])


def labels(outputs: np.ndarray) -> np.ndarray:
  """Predicted labels of outputs: the class of the largest logit, or the value for regression."""
  return outputs if outputs.ndim == 1 else np.argmax(outputs, axis=-1)


def predict_all(predict, params, arrays, batch):
  """predict over (tokens, mask) in batches of `batch` rows, the last padded: one compiled shape."""
  tokens, mask = arrays
  n, out = len(tokens), []
  for s in range(0, n, batch):
    take = padded_index(np.arange(s, min(s + batch, n)), batch)
    out.append(np.asarray(predict(params, tokens[take], mask[take]))[:min(batch, n - s)])
  return np.concatenate(out)
