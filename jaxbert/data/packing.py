"""How a token store's rows are cut (data.pack): "stream" or "sentences".

"stream" cuts the token stream, documents joined by [SEP], into seq_len pieces: no padding, no
[CLS] (build.py). "sentences" packs rows that look like a fine-tuning input, [CLS] text [SEP]:

  [CLS] sentence [SEP] sentence [SEP] ... [PAD] ...

Each row starts with [CLS] at the start of a sentence and holds as many whole sentences, each
followed by [SEP], as fit in seq_len (greedily, in corpus order); the rest of the row is [PAD].
A sentence longer than a row (more than seq_len - 2 tokens) is cut into pieces of seq_len - 2
tokens, each a full row of its own; its last, shorter piece starts a row that later sentences
may join. Packing runs on across documents: a new document only starts a new sentence, so
short documents share rows instead of each padding one. The sentences are NLTK punkt's, one per
line of the cleaned text (text.clean with split_sentences).

Pure functions over numpy arrays; build.py feeds them a batch of documents at a time.
"""
import numpy as np

from .tokenizer import CLS_ID, SEP_ID

PACKS = ("stream", "sentences")


def pieces(lengths, width: int) -> np.ndarray:
  """Token counts of the pieces that sentences of `lengths` tokens are cut into: one piece per
  sentence of at most `width` tokens, ceil(n / width) for longer ones (all `width` but the last),
  none for an empty sentence."""
  lengths = np.asarray(lengths, np.int64)
  count = -(-lengths // width)
  out = np.full(int(count.sum()), width, np.int64)
  has = count > 0
  last = np.cumsum(count)[has] - 1  # each non-empty sentence's last piece
  out[last] = lengths[has] - (count[has] - 1) * width
  return out


def _place(lengths: list[int], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
  """(row, column of its first token) of each piece: next-fit, a piece and its [SEP] go in the
  current row if they fit, else open the next row after its [CLS]. Sequential by nature; a loop
  over plain ints is the fastest form in Python (a tenth of a microsecond a sentence)."""
  rows, columns = np.empty(len(lengths), np.int64), np.empty(len(lengths), np.int64)
  row, used = 0, 1
  for i, n in enumerate(lengths):
    if used + n + 1 > seq_len:
      row, used = row + 1, 1
    rows[i], columns[i] = row, used
    used += n + 1
  return rows, columns


def pack(ids: np.ndarray, lengths, seq_len: int, *,
         final: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Rows [R, seq_len] of the sentences whose tokens are `ids`, one after another, `lengths`
  tokens each; with the (ids, lengths) of the last row's pieces, which are held back unless
  `final`: packed again at the front of the next call, they give the row they would have given,
  so the rows do not depend on how the corpus is split into calls."""
  if seq_len < 3:
    raise ValueError(f"seq_len={seq_len}: a sentence row needs [CLS], a token and [SEP]")
  lengths = pieces(lengths, seq_len - 2)
  if int(lengths.sum()) != len(ids):
    raise ValueError(f"{len(ids)} ids but sentence lengths adding up to {lengths.sum()}")
  if not len(lengths):
    return np.zeros((0, seq_len), ids.dtype), ids[:0], lengths
  row, column = _place(lengths.tolist(), seq_len)
  kept = int(row[-1]) + 1 - (not final)
  k = int(np.searchsorted(row, kept))  # pieces in the kept rows
  starts = np.cumsum(lengths) - lengths  # each piece's first token in `ids`
  tokens = int(starts[k]) if k < len(lengths) else len(ids)
  out = np.zeros((kept, seq_len), ids.dtype)  # [PAD] is id 0
  out[:, 0] = CLS_ID
  # One flat index per token (a single scatter): token j of a piece lands j after its first.
  flat = out.reshape(-1)
  first = row[:k] * seq_len + column[:k]
  flat[np.repeat(first - starts[:k], lengths[:k]) + np.arange(tokens)] = ids[:tokens]
  flat[first + lengths[:k]] = SEP_ID
  return out, ids[tokens:], lengths[k:]
