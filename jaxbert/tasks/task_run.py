"""One task of the comparison (compare.py): the pretrained encoder, the same architecture from
random init, the CNN and bag of words, fine-tuned on the same training subset of each size of
finetune.train_sizes, every neural one over finetune.seeds seeds; the rows of median dev scores,
and the pretrained seed worth keeping."""

import typing

import jax
import ml_collections
import numpy as np

from jaxbert.config import ConfigError
from jaxbert.data.labelled import column
from jaxbert.model import ModelConfig

from . import baselines, curve, tables
from . import classifier as classifier_lib
from . import finetune as finetune_lib


def run_task(task, tokenizer, model_config: ModelConfig, encoder_params, cfg, max_len: int,
             augmenter=None, pooler=None):
  """(rows, kept) of one task: rows {task, metric, train_examples, <model>: median,
  <model>_seeds: [...]}, one per size of finetune.train_sizes and column; kept, the pretrained
  classifier of the largest size, worth saving (see `_keep`). `augmenter(split)` adds examples
  (finetune.augment) to each training subset; `pooler`, the encoder's own pooler (an imported
  BERT's), which the pretrained classifier starts from when it pools through one."""
  if task.pair and max_len < 5:
    raise ConfigError(f"finetune.max_len={max_len} leaves no room for a pair: [CLS] a [SEP] b "
                      "[SEP] needs 5 tokens or more")
  order = curve.label_order(task.train.labels, task.regression)
  sizes = curve.train_sizes(cfg, len(task.train))
  devs = {name: classifier_lib.encode(tokenizer, s.text_a, max_len, s.text_b)[:2]
          for name, s in task.dev.items()}
  rows = []
  for size in sizes:
    train = task.train.subset(np.sort(order[:size]))
    size_rows, kept = _run_size(task, train, augmenter(train) if augmenter else train, devs,
                                tokenizer, model_config, encoder_params, cfg, max_len, pooler)
    rows += size_rows
  return rows, kept


def _run_size(task, labelled_train, train, devs, tokenizer, model_config, encoder_params, cfg,
              max_len, pooler=None):
  """Rows and the kept classifier of one training set (`train`: `labelled_train` and any
  augmented copies of it)."""
  tokens, mask, cut = classifier_lib.encode(tokenizer, train.text_a, max_len, train.text_b)
  arrays = (tokens, mask, train.labels)
  if cut:
    # Cut texts lose words the bag-of-words baseline still sees, so say how many.
    more = (f"finetune.max_len up to the model's {model_config.max_len} keeps more"
            if max_len < model_config.max_len else "the model takes no more")
    print(f"[finetune] {task.name}: {cut} of {len(train)} training examples "
          f"({100 * cut / len(train):.0f}%) are longer than finetune.max_len={max_len} tokens and "
          f"lose their ends; {more}", flush=True)
  epochs = finetune_lib.epochs_for(cfg, len(train))
  if epochs != cfg.epochs:
    cfg = ml_collections.ConfigDict({**cfg.to_dict(), "epochs": epochs})
  label = f"{task.name} ({len(labelled_train)} labels" + (
      f", {len(train)} examples" if len(train) != len(labelled_train) else "") + (
      f", {epochs} epochs)")

  classifier = classifier_lib.Classifier(model_config, task.num_outputs, cfg.pooling)
  cnn = baselines.TextCNN(model_config.vocab_size, cfg.cnn_embed, cfg.cnn_filters,
                          task.num_outputs, cfg.cnn_dropout)
  runs = {  # name -> (model, compiled steps, encoder params)
      "pretrained": (classifier, finetune_lib.trainer(classifier, cfg, len(train), task.regression),
                     encoder_params),
      "no_pretraining": (classifier, None, None),
      "cnn": (cnn, finetune_lib.trainer(cnn, cfg, len(train), task.regression, cfg.cnn_lr), None),
  }
  if not cfg.baselines:
    runs = {"pretrained": runs["pretrained"]}
  per_seed = {name: [] for name in runs}
  candidates = []  # (dev outputs, params) of each pretrained seed, on the host
  for seed in range(cfg.seeds):
    for name, (model, steps, params) in runs.items():
      steps = steps or runs["pretrained"][1]
      outputs, trained = finetune_lib.finetune(model, steps, params, arrays, devs, cfg, seed,
                                               pooler if name == "pretrained" else None)
      if name == "pretrained":
        candidates.append((outputs, jax.device_get(trained)))
      per_seed[name].append(tables.score(
          task, {s: finetune_lib.labels(o) for s, o in outputs.items()}))
      shown = ", ".join(f"{c} {v:.4f}" for c, v in per_seed[name][-1].items())
      print(f"[finetune] {label} seed {seed} {name}: {shown}", flush=True)
  medians = {name: tables.aggregate(s) for name, s in per_seed.items()}
  bow = tables.score(task, baselines.bag_of_words(task, train, cfg)) if cfg.baselines else None
  rows = []
  for split in task.dev:
    for m in task.metrics:
      c = column(split, m)
      row = dict(task=task.name, metric=c, in_average=c in task.headline,
                 headline=c == (task.headline or task.columns())[0])
      for name in runs:
        row[name], row[name + "_seeds"] = medians[name][0][c], medians[name][1][c]
      if bow is not None:
        row["bag_of_words"] = bow[c]
      row.update(train_examples=len(labelled_train), examples=len(train), epochs=epochs,
                 train_examples_cut=cut, dev_examples=len(task.dev[split]))
      rows.append(row)
  return rows, _keep(task, per_seed["pretrained"], candidates, cut)


class Kept(typing.NamedTuple):
  """The pretrained fine-tune a task keeps: the seed whose headline dev score is the median."""
  seed: int
  params: dict
  dev: dict  # {column: score} of that seed
  outputs: dict  # {dev split: its logits (or values)}
  note: str  # which seed and why, for classifier.json
  train_examples_cut: int


def _keep(task, scores: list[dict], candidates: list, cut: int) -> Kept:
  headline = (task.headline or task.columns())[0]
  order = sorted(range(len(scores)), key=lambda s: (scores[s][headline], s))
  seed = order[(len(order) - 1) // 2]  # the median; the lower middle one of an even number
  note = (f"seed {seed}: its dev {headline} is the median of {len(scores)} seeds" +
          (" (the lower of the two middle ones)" if len(scores) % 2 == 0 else ""))
  outputs, params = candidates[seed]
  return Kept(seed, params, scores[seed], outputs, note, cut)
