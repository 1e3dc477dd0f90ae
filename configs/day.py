"""The crammed-BERT recipe: one GPU, 24 hours (Geiping & Goldstein, arXiv 2212.14034, ICML 2023).

  python run.py --config=configs/day.py --workdir=workdirs/day

16 layers, width 768, GELU-GLU, pre-LN, no biases, sparse MLM head predicting 25% of each
128-token row; AdamW (peak 1e-3, betas 0.9/0.98), clip 0.5, the budget triangle schedule keyed to
wall-clock time, and a batch that ramps to 8192 rows at 60% of the budget. The micro-batch (rows
per forward pass) is the most that fit in the GPU's memory, chosen from the compiled step and
logged; it changes neither the batch nor the schedule, so the same file runs on a 24 GB card and a
141 GB one.

Expected result: the paper reports an MLM loss of about 1.9 after 24 h on one A6000 with The Pile
(not yet measured with jaxbert). On the embedded corpus (3.2M tokens at this vocabulary) a day
on a GPU would read it thousands of times, so the run stops in its first minutes with a message
(data.max_epochs=16); point `data.sources` at a large corpus for a real cram. First, without
training: `python run.py --mode=plan --config=configs/day.py --device=h100` (the step compiled
for that GPU: micro-batch 512, 38.4 GiB by XLA's analysis; `pip install -e ".[gpu-plan]"`).

A real corpus as parquet, fetched once where the network is reachable (NEEDS NETWORK; nothing
in jaxbert downloads it), then copied to the training machine if that one is offline. English
Wikipedia of 1 November 2023, the Hugging Face dataset `wikimedia/wikipedia`, config
`20231101.en` (about 6.4 million articles, text in column `text`; CC BY-SA 3.0 and GFDL):

  pip install huggingface_hub                                              # needs network
  hf download wikimedia/wikipedia --repo-type=dataset \
      --include='20231101.en/*.parquet' --local-dir=corpora/wikipedia      # needs network
  python run.py --mode=prepare --config=configs/day.py \
      --config.data.sources='parquet:corpora/wikipedia/20231101.en/*.parquet'
  python run.py --config=configs/day.py --workdir=workdirs/day-wikipedia \
      --config.data.sources='parquet:corpora/wikipedia/20231101.en/*.parquet'

Or FineWeb-Edu's sample of about 10 billion GPT-2 tokens (`HuggingFaceFW/fineweb-edu`, config
`sample-10BT`; ODC-By 1.0, and Common Crawl's terms of use), from Python (needs network):

  from huggingface_hub import snapshot_download
  snapshot_download("HuggingFaceFW/fineweb-edu", repo_type="dataset",
                    allow_patterns="sample/10BT/*.parquet", local_dir="corpora/fineweb-edu")

then `--config.data.sources='parquet:corpora/fineweb-edu/sample/10BT/*.parquet'` as above. The
dataset pages list the files' sizes; check the disk first. `--mode=prepare` builds the token
store once (off the training clock, cached); `hf` is `huggingface-cli download` before
huggingface_hub 0.34.
"""

from jaxbert.config import default


def get_config():
  return default()
