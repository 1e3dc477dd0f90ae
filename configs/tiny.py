"""A seconds-long run for tests: a 2-layer, 32-wide model for 3 steps on a slice of the corpus.

  python run.py --config=configs/tiny.py --workdir=/tmp/jaxbert-tiny

Expected result: 3 train lines and one eval line in metrics.jsonl within a minute on a laptop;
the numbers mean nothing at this size.
"""

from jaxbert.config import default


def get_config():
  config = default()
  config.budget_hours = 0.25
  m = config.model
  m.vocab_size, m.num_layers, m.hidden_size, m.num_heads, m.ffn_size, m.max_len = (
      512, 2, 32, 2, 64, 32)
  config.data.seq_len = 32
  config.data.max_documents = 40
  config.data.max_token_char_ratio = 0.0  # a 512-token vocabulary splits every document finely
  t = config.train
  t.micro_batch, t.batch_size, t.ramp_until = 4, 8, 0.5
  t.max_steps, t.log_every, t.keep, t.loader_threads = 3, 1, 2, 1
  config.eval.batch_size, config.eval.max_rows = 16, 64
  f = config.finetune
  f.max_len, f.epochs, f.seeds, f.max_train_examples, f.bow_steps = 32, 1, 1, 48, 50
  f.min_steps = 0  # one epoch of 48 examples: a smoke test of the path, not of its scores
  return config
