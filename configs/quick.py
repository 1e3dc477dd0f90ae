"""A small crammed model: 10 minutes on 2 CPU cores, the embedded corpus and the task's texts.

  python run.py --config=configs/quick.py --workdir=workdirs/quick

Chosen for the most learning per CPU minute (measurements in BENCHMARKS.md): 2 layers of width
128, vocabulary 8192, a constant batch of 2048 tokens (no ramp: at this budget more optimizer steps
beat larger batches) and a peak learning rate of 5e-3 under the budget triangle. Rows are 64
tokens, so that fine-tuning sees whole sentiment snippets: at 32, half of them were cut.

Expected result (measured on 2-core CPUs, BENCHMARKS.md): 7,000 to 18,000 steps by the machine
(13,398 and 27.4M tokens on 2026-12-03); held-out MLM loss 3.4 to 4.9 against the unigram
baseline's 6.6. Then, within about 8 more minutes (18m28s in all), the fine-tuning table on the
shipped sentiment task and the label-budget curve (median of 3 seeds) beside the baselines: no
pretraining, a CNN and a bag-of-words model. Pretraining on the corpus plus the task's unlabelled
texts is 10 to 12 points above the best baseline at 100 and 300 labels (about 0.70 against
0.57 and 0.60), 5.6 at 1,000, and ties random init at all 8,447 (0.793 against 0.790). Then the
saved classifier's place, the command that uses it (python run.py --mode=predict
--workdir=workdirs/quick --input=-) and its answers on two new texts.
"""

from jaxbert.config import default


def get_config():
  config = default()
  config.budget_hours = 10 / 60
  m = config.model
  m.vocab_size, m.num_layers, m.hidden_size, m.num_heads, m.ffn_size, m.max_len = (
      8192, 2, 128, 2, 512, 64)
  d = config.data
  # The shipped corpus and the sentiment task's unlabelled train texts (never its dev texts), ten
  # times over: pretraining pays when it sees the domain of the labels (BENCHMARKS.md, "Few
  # labels"). A user's own task: task:file:PATH here and file:PATH in finetune.task.
  d.sources, d.weights = "embedded,task:sentiment", "1,10"
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
  config.eval.every_minutes = 1.0  # a held-out point a minute: the curve of loss against budget
  # Then the fine-tuning table on the shipped sentiment task, with its baselines, and the
  # label-budget curve: 100, 300, 1,000 and all 8,447 labels.
  f = config.finetune
  f.after_training = True
  f.train_sizes = "100,300,1000,0"
  # Mean pooling: our pretraining rows hold no [CLS], so a short cram leaves its output untrained
  # (rows that do, data.pack="sentences", fine-tuned worse with either pooling: BENCHMARKS.md).
  # lr 1e-3 lies between the pretrained encoder's best (2e-3 to 3e-3) and random init's (3e-4),
  # within a point of each at 64 tokens (BENCHMARKS.md); the baselines train with it too.
  f.max_len, f.lr, f.epochs, f.seeds, f.pooling = 64, 1e-3, 3, 3, "mean"
  return config
