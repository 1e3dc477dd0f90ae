"""The encoding stage of a store build: each split's cleaned text encoded in batches
(tokenizer.Encoder, in worker processes), filtered by tokens per character, and packed into rows
(data.pack: "stream", documents joined by [SEP] and cut in seq_len pieces; or "sentences",
[CLS] sentence [SEP] ... [PAD], packing.py) written to shards, with the train split's unigram
counts."""
import os
from typing import Iterator

import numpy as np

from . import packing
from .shards import ShardWriter
from .streaming import SPLITS, chunked, jsonl, progress
from .tokenizer import PAD_ID, SEP_ID
from .workers import Workers, encode_batch, encode_sentences_batch, init_encoder


def _pack_split(c, encoder, src, out, split, dtype, k, unigram, dot_id,
                batch_chars: int) -> list[dict]:
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  sep, carry = np.array([SEP_ID], dtype), np.zeros(0, dtype)
  writer, dots = ShardWriter(out, split, L, dtype), []
  bar = progress(f"encode {split}")
  for batch, encoded in encoder.map(chunked(jsonl(src), batch_chars)):
    pieces = [carry]
    for doc, ids in zip(batch, encoded):
      if ratio > 0 and len(ids) > ratio * len(doc):  # text the tokenizer cannot model
        k["dropped_ratio"] += 1
        continue
      pieces += [ids, sep]
      k["tokens"] += len(ids) + 1
    stream = np.concatenate(pieces)
    full = len(stream) // L * L
    rows = stream[:full].reshape(-1, L)
    writer.write(rows)
    if split == "train":
      unigram += np.bincount(rows.ravel(), minlength=len(unigram))
    dots.append((rows == dot_id).sum(1).astype(np.uint16) if dot_id is not None
                else np.zeros(len(rows), np.uint16))
    k["rows"] += len(rows)
    carry = stream[full:]  # whatever is left at the very end is dropped
    bar.advance(sum(map(len, batch)))
  bar.close()
  np.save(os.path.join(out, f"{split}-dots.npy"),
          np.concatenate(dots or [np.zeros(0, np.uint16)]))
  return writer.close()


def _sentence_rows(c, encoder, src, dtype, k,
                   batch_chars: int) -> Iterator[tuple[np.ndarray, int]]:
  """(rows, characters read) a batch of documents at a time, for data.pack="sentences"
  (packing.py); the last partial row is kept, padded, where the stream drops its tail."""
  L, ratio = c["seq_len"], c["max_token_char_ratio"]
  carry = (np.zeros(0, dtype), np.zeros(0, np.int64))
  for batch, encoded in encoder.map(chunked(jsonl(src), batch_chars)):
    ids, lengths = [carry[0]], [carry[1]]
    for doc, (doc_ids, doc_lengths) in zip(batch, encoded):
      if ratio > 0 and len(doc_ids) > ratio * len(doc):  # text the tokenizer cannot model
        k["dropped_ratio"] += 1
        continue
      ids.append(doc_ids)
      lengths.append(doc_lengths)
      k["sentences"] += int((doc_lengths > 0).sum())
      k["long_sentences"] += int((doc_lengths > L - 2).sum())
    rows, *carry = packing.pack(np.concatenate(ids), np.concatenate(lengths), L, final=False)
    yield rows, sum(map(len, batch))
  yield packing.pack(*carry, L, final=True)[0], 0


def _pack_sentences_split(c, encoder, src, out, split, dtype, k, unigram, dot_id,
                          batch_chars: int) -> list[dict]:
  writer, dots = ShardWriter(out, split, c["seq_len"], dtype), []
  bar = progress(f"encode {split}")
  for rows, chars in _sentence_rows(c, encoder, src, dtype, k, batch_chars):
    writer.write(rows)
    real = rows[rows != PAD_ID]
    if split == "train":  # pads are no text: left out, as they are of the loss
      unigram += np.bincount(real, minlength=len(unigram))
    dots.append((rows == dot_id).sum(1).astype(np.uint16) if dot_id is not None
                else np.zeros(len(rows), np.uint16))
    k["rows"] += len(rows)
    k["tokens"] += len(real)  # [CLS] and [SEP]s included: fill = tokens / (rows × seq_len)
    bar.advance(chars)
  bar.close()
  np.save(os.path.join(out, f"{split}-dots.npy"),
          np.concatenate(dots or [np.zeros(0, np.uint16)]))
  return writer.close()


def fill(k: dict, seq_len: int) -> str:
  """For sentence rows, the share of positions that are not [PAD], and the sentences; else ""."""
  if "sentences" not in k:
    return ""
  return (f", fill {k['tokens'] / max(k['rows'] * seq_len, 1):.1%}, {k['sentences']} sentences, "
          f"{k['long_sentences']} longer than a row")


def encode(out, c, tok, vocab, counts, dtype, batch_chars: int) -> tuple[dict, np.ndarray]:
  """(shards per split, unigram counts); the cleaned text is removed once encoded."""
  unigram = np.zeros(vocab, np.int64)
  shards = {}
  sentences = c["pack"] == "sentences"
  encoder = Workers(c["workers"], encode_sentences_batch if sentences else encode_batch,
                    (np.dtype(dtype).name,), init_encoder, (os.path.join(out, "tokenizer.json"),))
  pack_split = _pack_sentences_split if sentences else _pack_split
  try:
    for sp in SPLITS:
      shards[sp] = pack_split(c, encoder, os.path.join(out, f"clean-{sp}.jsonl"), out, sp,
                              dtype, counts[sp], unigram, tok.token_to_id("."), batch_chars)
      os.remove(os.path.join(out, f"clean-{sp}.jsonl"))
  finally:
    encoder.close()
  return shards, unigram

