"""A small crammed model: 10 minutes on 2 CPU cores, the embedded corpus and the task's texts.

  python run.py --config=configs/quick.py --workdir=workdirs/quick

Chosen for the most learning per CPU minute (measurements in BENCHMARKS.md): 2 layers of width
128, vocabulary 8192, a constant batch of 2048 tokens (no ramp: at this budget more optimizer steps
beat larger batches), a peak learning rate of 5e-3 under the budget triangle, and the position
sinusoid's scale kept constant (learned, it collapses and holds the loss on a plateau for most of
the budget: BENCHMARKS.md, "Speedrun"). Rows are 64 tokens, so that fine-tuning sees whole
sentiment snippets: at 32, half of them were cut. A held-out point each minute.

Expected result (measured on 2-core CPUs, BENCHMARKS.md): 6,000 to 18,000 steps by the machine
(5,988 and 12.3M tokens on a slow one on 2026-12-07); held-out MLM 4.03 there against the unigram
baseline's 6.65, falling from the third minute on. Then, within 8 to 16 more minutes (26m22s in
all on that machine), the fine-tuning table on the shipped sentiment task and the label-budget
curve (median of 3 seeds) beside the baselines: no pretraining, a CNN and a bag-of-words model.
There, pretraining on the corpus plus the task's unlabelled texts was 7.6 points above the best
baseline at 100 labels, 5.7 at 300, 3.4 at 1,000, and 1.2 below random init with all 8,447 (a
machine making 13,398 steps, the scale then learned, gave +12.5, +10.3, +5.6 and +0.3). Then the
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
  # The sinusoid's scale stays at its start, 1/sqrt(128): learned, Adam shrinks it more than tenfold
  # by step 1,600, first-layer attention can no longer tell a token's neighbours
  # from the rest of its row, and the loss sits near 5.7 for most of the budget (docs/speedrun.md).
  m.position_learned = False
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
  # Repeating the small shipped corpus is the point of this job (5 epochs on a 2-core machine, many
  # more on a GPU): no limit.
  d.max_epochs = 0
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
