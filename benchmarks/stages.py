"""Per-stage rates on one core, to see where preparation and loading spend their time.

  python benchmarks/stages.py [--mb=4]

On the first --mb MB of the embedded corpus's train documents: NLTK punkt sentence splitting
(text.sentence_splitter), the clean-up without it (NFKC and whitespace), text.clean as the store
runs it (no sentence lines, the default) and with split_sentences; WordPiece encoding (vocab 32768
trained on the same text) by encode_batch, by a loop over encode, and by the store's
tokenizer.Encoder, cold (every chunk new) and warm (a second pass); then masking.mask_row per
128-token row, and masking.mask_rows and the loader's epoch permutation per row of a 256-row
batch. Prints one JSON object.
"""

import json
import time
import unicodedata

from absl import app, flags

flags.DEFINE_float("mb", 4, "MB of text to time")
flags.DEFINE_integer("rows", 10240, "rows to mask")
FLAGS = flags.FLAGS


def rate(fn, docs, mb):
  t0 = time.time()
  fn(docs)
  return round(mb / (time.time() - t0), 2)


def main(_):
  import numpy as np

  from jaxbert import counters, masking
  from jaxbert.data import corpus, text, tokenizer

  docs, n = [], 0
  for d in corpus.documents("train"):
    docs.append(d)
    n += len(d)
    if n >= FLAGS.mb * 1e6:
      break
  mb = n / 1e6
  flat = [" ".join(d.split()) for d in docs]
  splitter = text.sentence_splitter()
  tok = tokenizer.train(docs, 32768)
  out = {"mb": round(mb, 2), "mb_per_s": {
      "sent_tokenize": rate(lambda ds: [splitter.tokenize(d) for d in ds], flat, mb),
      "nfkc_and_whitespace": rate(
          lambda ds: [" ".join(unicodedata.normalize("NFKC", d).split()) for d in ds], docs, mb),
      "text.clean": rate(lambda ds: [text.clean(d) for d in ds], docs, mb),
      "text.clean_split_sentences": rate(
          lambda ds: [text.clean(d, split_sentences=True) for d in ds], docs, mb),
      "encode_batch": rate(lambda ds: tok.encode_batch(ds, add_special_tokens=False), docs, mb),
      "encode_loop": rate(lambda ds: [tok.encode(d, add_special_tokens=False) for d in ds],
                          docs, mb),
  }}
  cleaned = [text.clean(d) for d in docs]
  encoder = tokenizer.Encoder(tok, np.uint16)
  out["mb_per_s"]["Encoder_cold"] = rate(encoder, cleaned, mb)
  out["mb_per_s"]["Encoder_warm"] = rate(encoder, cleaned, mb)
  row = np.random.default_rng(0).integers(5, 32768, 128).astype(np.uint16)
  t0 = time.time()
  for i in range(FLAGS.rows):
    masking.mask_row(row, 0, i, count=32, mask_id=4, vocab_size=32768, special_ids=range(5))
  out["mask_row_us"] = round((time.time() - t0) / FLAGS.rows * 1e6, 1)
  rows = np.tile(row, (256, 1))
  t0 = time.time()
  for b in range(FLAGS.rows // 256):
    masking.mask_rows(rows, 0, np.arange(b * 256, b * 256 + 256), count=32, mask_id=4,
                      vocab_size=32768, special_ids=range(5))
  out["mask_rows_us_per_row"] = round((time.time() - t0) / (FLAGS.rows // 256 * 256) * 1e6, 2)
  t0 = time.time()
  for b in range(FLAGS.rows // 256):
    counters.permute(counters.key(0, b // 100), np.arange(b * 256, b * 256 + 256), 10**8)
  out["permute_us_per_row"] = round((time.time() - t0) / (FLAGS.rows // 256 * 256) * 1e6, 2)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  app.run(main)
