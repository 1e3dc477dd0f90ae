"""Held-out MLM evaluation of saved or live params, beside a unigram baseline.

The held-out rows are masked with a fixed seed, so every evaluation of every run scores the same
positions. Two accuracies are reported: over all predicted positions, and over those whose input
token was actually replaced ([MASK] or a random token), since an untrained model already "predicts"
the 10% left unchanged by copying them.
"""

import jax
import numpy as np

from jaxbert.config import ConfigError
from jaxbert.data import loader, tokenizer

from .loss import cross_entropy


def unigram_log_probs(counts: np.ndarray) -> np.ndarray:
  """Add-one smoothed token frequencies over the ordinary (non-special) vocabulary."""
  counts = np.asarray(counts, np.float64) + 1.0
  counts[list(tokenizer.SPECIAL_IDS)] = 0.0
  with np.errstate(divide="ignore"):
    return np.log(counts / counts.sum())


class Heldout:
  """The held-out sample masked once, and a scorer compiled once: `heldout(params)` -> metrics.

  Built once per run, it scores the same positions at every point of a training curve and at its
  end. The masking rate is eval.mask_rate, never the training rate, so that runs which train at
  other rates are scored on the same task.
  """

  def __init__(self, model, store, config):
    rows = store.heldout
    if config.eval.max_rows > 0:
      rows = rows[:config.eval.max_rows]
    if len(rows) == 0:  # task: sources hold none out
      raise ConfigError(f"the token store {store.path} has no held-out rows to evaluate on: "
                        f"data.sources={config.data.sources!r} holds none out; add a source that "
                        "does (embedded, text:, jsonl:, tfds:)")
    size = config.eval.batch_size

    def predict(params, batch):
      logits = model.apply({"params": params}, batch["inputs"], batch["positions"],
                           attention_mask=batch.get("attention_mask"))
      return cross_entropy(logits, batch["targets"])

    self.predict, self.rows = jax.jit(predict), len(rows)
    log_p = unigram_log_probs(store.unigram)
    guess = int(np.argmax(log_p))
    self.batches, self.sums = [], dict(weight=0.0, replaced=0.0, unigram_loss=0.0,
                                       unigram_hits=0.0, unigram_replaced_hits=0.0)
    for batch in loader.heldout_batches(rows, seed=config.eval.seed, batch_size=size,
                                        mask_rate=config.eval.mask_rate,
                                        vocab_size=config.model.vocab_size,
                                        pack=config.data.pack):
      real = len(batch["inputs"])
      # Pad the last batch to the common size (weight 0) so predict compiles once.
      padded = {k: np.concatenate([v, np.zeros((size - real,) + v.shape[1:], v.dtype)])
                for k, v in batch.items()}
      w, targets = batch["weights"], batch["targets"]
      replaced = w * (np.take_along_axis(batch["inputs"], batch["positions"], 1) != targets)
      self.batches.append((padded, w, replaced))
      self.sums["weight"] += float(w.sum())
      self.sums["replaced"] += float(replaced.sum())
      # A pick of weight 0 may stand on a special token ([PAD] in a sentence row): log p = -inf.
      self.sums["unigram_loss"] += float((np.where(w > 0, -log_p[targets], 0.0) * w).sum())
      self.sums["unigram_hits"] += float(((targets == guess) * w).sum())
      self.sums["unigram_replaced_hits"] += float(((targets == guess) * replaced).sum())

  def __call__(self, params) -> dict:
    """mlm_loss, mlm_accuracy, replaced_accuracy and the unigram baseline's loss and accuracy."""
    loss = hits = replaced_hits = 0.0
    for batch, w, replaced in self.batches:
      ce, hit = jax.device_get(self.predict(params, batch))
      ce, hit = ce[:len(w)], hit[:len(w)]
      loss += float((ce * w).sum())
      hits += float((hit * w).sum())
      replaced_hits += float((hit * replaced).sum())
    s = self.sums
    return {
        "mlm_loss": loss / s["weight"],
        "mlm_accuracy": hits / s["weight"],
        "replaced_accuracy": replaced_hits / max(s["replaced"], 1.0),
        "unigram_loss": s["unigram_loss"] / s["weight"],
        "unigram_accuracy": s["unigram_hits"] / s["weight"],
        "unigram_replaced_accuracy": s["unigram_replaced_hits"] / max(s["replaced"], 1.0),
        "heldout_rows": self.rows,
        "predicted_positions": int(s["weight"]),
    }


def format_mlm(r: dict) -> str:
  return "\n".join([
      f"held-out MLM on {r['heldout_rows']} rows ({r['predicted_positions']} predicted tokens):",
      "                   loss   accuracy   accuracy on replaced tokens",
      f"  model          {r['mlm_loss']:6.3f}   {r['mlm_accuracy']:8.2%}   "
      f"{r['replaced_accuracy']:8.2%}",
      f"  unigram        {r['unigram_loss']:6.3f}   {r['unigram_accuracy']:8.2%}   "
      f"{r['unigram_replaced_accuracy']:8.2%}",
  ])
