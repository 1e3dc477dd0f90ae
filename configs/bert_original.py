"""The original BERT-base architecture under the crammed training recipe, for comparison.

  python run.py --config=configs/bert_original.py --workdir=workdirs/bert_original

Post-LN, biases everywhere, GELU FFN of 3072, learned positions and a dense MLM head with a
transform: what the cramming paper measured its changes against. Same data, optimizer, budget and
ramp as configs/day.py, so the two runs differ by architecture alone.

Expected result: a higher MLM loss than day.py after the same budget (the paper's ablations);
not yet measured with jaxbert.
"""

from jaxbert.config import default


def get_config():
  config = default()
  config.model.arch = "original"
  config.model.num_layers = 12
  return config
