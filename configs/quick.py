"""A small crammed model that trains in 10 minutes on 2 CPU cores from the embedded corpus.

  python run.py --config=configs/quick.py --workdir=workdirs/quick

Expected result: see README.md ("Quick start") for the measured held-out numbers.
"""

from jaxbert.config import default


def get_config():
  config = default()
  config.budget_hours = 10 / 60
  m = config.model
  m.vocab_size, m.num_layers, m.hidden_size, m.num_heads, m.ffn_size = 8192, 4, 256, 4, 1024
  # An 8192 vocabulary splits words more finely than the recipe's 32768: at 0.25 the junk filter
  # would drop most of Moby-Dick; 0.3 drops under 1% of the documents.
  config.data.max_token_char_ratio = 0.3
  config.optim.peak_lr = 2e-3
  t = config.train
  t.micro_batch, t.batch_size, t.ramp_until = 32, 128, 0.5
  t.log_every, t.checkpoint_minutes = 20, 2.0
  config.eval.max_rows = 2048
  return config
