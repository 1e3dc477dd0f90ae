"""The GLUE-sane fine-tuning protocol of the cramming paper, for --mode=glue.

  python run.py --mode=glue --workdir=workdirs/day --config=configs/glue.py \
      --config.finetune.task=glue:/data/glue_data

Only the `finetune` block is read: the model, tokenizer and checkpoint come from the workdir.
Every GLUE task found in the directory (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE; no WNLI)
is fine-tuned with the same settings: 5 epochs, batch 16, peak lr 4e-5 with 10% linear warmup and
cosine decay, AdamW betas (0.9, 0.98), eps 1e-6, no weight decay, dropout 0.1, up to 128 tokens;
the median of 5 seeds per score. Results: WORKDIR/finetune/glue.md and glue.json.

`tfds:glue` instead of `glue:DIR` reads the eight TFDS GLUE configs, if they are prepared.
A small CPU model may want `--config.finetune.lr=1e-4`; fewer seeds: `--config.finetune.seeds=3`.
"""

from jaxbert.config import default


def get_config():
  config = default()
  f = config.finetune
  f.task = "glue:glue_data"  # a GLUE directory; override with --config.finetune.task=glue:DIR
  f.epochs, f.batch_size, f.lr, f.warmup = 5, 16, 4e-5, 0.1
  f.b1, f.b2, f.eps, f.weight_decay, f.dropout = 0.9, 0.98, 1e-6, 0.0, 0.1
  f.max_len = 0  # the checkpoint's model.max_len: 128 for the recipe, less for small models
  f.seeds = 5
  return config
