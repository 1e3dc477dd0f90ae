"""A small crammed model that trains in 10 minutes on 2 CPU cores from the embedded corpus.

  python run.py --config=configs/quick.py --workdir=workdirs/quick

Chosen for the most learning per CPU minute (measurements in BENCHMARKS.md): 2 layers of width
128, vocabulary 8192, a constant batch of 2048 tokens (no ramp: at this budget more optimizer steps
beat larger batches) and a peak learning rate of 5e-3 under the budget triangle. Rows are 64
tokens, so that fine-tuning sees whole sentiment snippets: at 32, half of them were cut.

Expected result (measured on 2-core CPUs, BENCHMARKS.md): 7,000 to 18,000 steps by the machine
(13,052 and 26.7M tokens on 2026-12-03); held-out MLM loss 3.4 to 4.9 against the unigram
baseline's 6.6. Then, within a few more minutes, the fine-tuning table on the shipped sentiment
task (median of 3 seeds) beside the baselines: no pretraining, a CNN and a bag-of-words model, all
four within about a point of 0.765; and the saved classifier's place, the command that uses it
(python run.py --mode=predict --workdir=workdirs/quick --input=-) and its answers on two new
texts. Pretraining on the shipped corpus does not beat random init at this size (0.762 against
0.770; each at its best learning rate after 30 one-core minutes, a tie); a 4-layer, 256-wide
model after 60 one-core minutes gains 1.5 points (BENCHMARKS.md).
"""

from jaxbert.config import default


def get_config():
  config = default()
  config.budget_hours = 10 / 60
  m = config.model
  m.vocab_size, m.num_layers, m.hidden_size, m.num_heads, m.ffn_size, m.max_len = (
      8192, 2, 128, 2, 512, 64)
  d = config.data
  # Rows of 64: fine-tuning can use no more positions than pretraining trained, and the sentiment
  # snippets average 31 tokens with this vocabulary; at 32, half of them were cut (BENCHMARKS.md).
  d.seq_len = 64
  # An 8192 vocabulary splits words more finely than the recipe's 32768: at 0.25 the junk filter
  # would drop most of Moby-Dick; 0.3 drops under 1% of the documents.
  d.max_token_char_ratio = 0.3
  config.optim.peak_lr = 5e-3
  t = config.train
  t.micro_batch, t.batch_size = 32, 32  # 2048 tokens a step, as with 64 rows of 32
  t.log_every, t.checkpoint_minutes = 200, 2.0
  config.eval.max_rows = 4096
  # Then the fine-tuning table on the shipped sentiment task, with its baselines.
  f = config.finetune
  f.after_training = True
  # Mean pooling: our pretraining rows hold no [CLS], so a short cram leaves its output untrained.
  # lr 1e-3 lies between the pretrained encoder's best (2e-3 to 3e-3) and random init's (3e-4),
  # within a point of each at 64 tokens (BENCHMARKS.md); the baselines train with it too.
  f.max_len, f.lr, f.epochs, f.seeds, f.pooling = 64, 1e-3, 3, 3, "mean"
  return config
