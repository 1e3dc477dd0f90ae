"""The crammed-BERT recipe: one GPU, 24 hours (Geiping & Goldstein, arXiv 2212.14034, ICML 2023).

  python run.py --config=configs/day.py --workdir=workdirs/day

16 layers, width 768, GELU-GLU, pre-LN, no biases, sparse MLM head predicting 25% of each
128-token row; AdamW (peak 1e-3, betas 0.9/0.98), clip 0.5, the budget triangle schedule keyed to
wall-clock time, and a batch that ramps to 8192 rows at 60% of the budget. The micro-batch (rows
per forward pass) is the most that fit in the GPU's memory, chosen from the compiled step and
logged; it changes neither the batch nor the schedule, so the same file runs on a 24 GB card and a
141 GB one.

Expected result: the paper reports an MLM loss of about 1.9 after 24 h on one A6000 with The Pile
(not yet measured with jaxbert). The embedded corpus is only ~16 MB, which a day would repeat
hundreds of times; point `data.sources` at a large corpus for a real cram.
"""

from jaxbert.config import default


def get_config():
  return default()
