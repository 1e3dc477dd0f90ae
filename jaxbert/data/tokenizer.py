"""WordPiece tokenizer (BERT style) trained with HF tokenizers, and a fast corpus encoder."""
import itertools
import os
from typing import Iterable

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from jaxbert.config import ConfigError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # position == id
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = SPECIAL_IDS = tuple(range(len(SPECIAL_TOKENS)))


def wordpiece(vocab: dict[str, int] | None = None, lowercase: bool = True) -> Tokenizer:
  """jaxbert's WordPiece set-up, over `vocab` (token -> id) or, to be trained, none."""
  tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100,
                                   continuing_subword_prefix="##"))
  # Accents are stripped only when lowercasing, as in BERT uncased vs cased.
  tok.normalizer = normalizers.BertNormalizer(
      clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece(prefix="##")
  return tok


def train(texts: Iterable[str], vocab_size: int, *, lowercase: bool = True,
          path: str | None = None) -> Tokenizer:
  """Train on a stream of texts; save to `path` (tokenizer.json) if given."""
  tok = wordpiece(lowercase=lowercase)
  # The trainer adds special tokens first, in order, so their ids are fixed.
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
      continuing_subword_prefix="##", show_progress=False)
  tok.train_from_iterator(texts, trainer)
  # The trainer numbers tokens in hash-map order, which changes from run to run: two trainings on
  # the shipped corpus gave the same 8192 tokens, a few hundred under other ids. Sorted ids make
  # the same tokens the same ids (WordPiece matches by string, not by id). On a tie the set itself
  # can still differ (huggingface/tokenizers issue 1794); that needs the trainer fixed.
  rest = sorted(set(tok.get_vocab()) - set(SPECIAL_TOKENS))
  tok = wordpiece({t: i for i, t in enumerate([*SPECIAL_TOKENS, *rest])}, lowercase)
  for i, t in enumerate(SPECIAL_TOKENS):
    assert tok.token_to_id(t) == i, f"{t} got id {tok.token_to_id(t)}, expected {i}"
  if path:
    tok.save(path)
  return tok


def load(path: str) -> Tokenizer:
  return Tokenizer.from_file(path)


def given(path: str, vocab_size: int) -> str:
  """The tokenizer.json named by data.tokenizer (a file or a directory holding one), checked.

  ConfigError unless it loads, holds jaxbert's special tokens at ids 0-4 (the masking and the
  packing rely on them) and fits in `vocab_size` ids.
  """
  file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
  if not os.path.isfile(file):
    raise ConfigError(f"data.tokenizer={path!r}: {file} does not exist; give a tokenizer.json "
                      "(or a directory holding one), or \"\" to train one on the corpus")
  try:
    tok = load(file)
  except Exception as e:  # tokenizers raises its own Exception types
    raise ConfigError(f"data.tokenizer={path!r}: {file} is not a tokenizers JSON file "
                      f"({str(e).splitlines()[0]})") from None
  wrong = [f"{t} at {tok.token_to_id(t)}" for i, t in enumerate(SPECIAL_TOKENS)
           if tok.token_to_id(t) != i]
  if wrong:
    raise ConfigError(f"data.tokenizer={path!r}: {file} must hold {' '.join(SPECIAL_TOKENS)} at "
                      f"ids 0-4 but has {', '.join(wrong)}; a Hugging Face BERT directory "
                      "becomes one with run.py --mode=import")
  if tok.get_vocab_size() > vocab_size:
    raise ConfigError(f"data.tokenizer={path!r}: {file} has {tok.get_vocab_size()} tokens, more "
                      f"than model.vocab_size={vocab_size}; raise model.vocab_size")
  return file


class Encoder:
  """Token ids of cleaned documents (text.clean's output), as numpy arrays, without specials.

  For BERT-style tokenizers (BertNormalizer or none, then a whitespace-splitting pre-tokenizer)
  every step works within whitespace-separated chunks: the normaliser maps characters one by one,
  the pre-tokenizer splits at whitespace first and the model sees one pre-token at a time. A
  document's ids are therefore the concatenation of its chunks' ids, and a corpus repeats the same
  chunks endlessly, so each distinct chunk is encoded once (a batch of new ones at a time, by the
  tokenizer itself) and looked up after that: about five times the tokenizer's own rate on one
  core. Other tokenizers (byte-level BPE, say, whose tokens carry the space) are called directly.
  The test suite checks both paths give the tokenizer's own ids.
  """

  CACHED_CHUNK_CHARS = 64  # longer chunks are rare; encoding them again is cheaper than storing
  CACHE_CHUNKS = 1 << 19  # bounds the cache's memory (BENCHMARKS.md: peak RSS); cleared when full

  def __init__(self, tok: Tokenizer, dtype=np.int32):
    self.tok, self.dtype = tok, np.dtype(dtype)
    self.cache: dict[str, list[int]] | None = {} if _chunk_local(tok) else None

  def __call__(self, docs: list[str]) -> list[np.ndarray]:
    if self.cache is None:
      return [np.asarray(e.ids, self.dtype)
              for e in self.tok.encode_batch_fast(docs, add_special_tokens=False)]
    chunks = [d.split() for d in docs]
    cache = self.cache
    new = {c for cs in chunks for c in cs if c not in cache}
    if len(cache) + len(new) > self.CACHE_CHUNKS:
      cache.clear()
      new = {c for cs in chunks for c in cs}
    new = list(new)
    for c, e in zip(new, self.tok.encode_batch_fast(new, add_special_tokens=False)):
      cache[c] = e.ids
    get = cache.__getitem__
    out = [np.fromiter(itertools.chain.from_iterable(map(get, cs)), self.dtype) for cs in chunks]
    for c in new:
      if len(c) > self.CACHED_CHUNK_CHARS:
        del cache[c]
    return out


def _chunk_local(tok: Tokenizer) -> bool:
  """Whether encoding is the concatenation of encoding each whitespace-separated chunk."""
  return (isinstance(tok.normalizer, (type(None), normalizers.BertNormalizer))
          and isinstance(tok.pre_tokenizer, (pre_tokenizers.BertPreTokenizer,
                                             pre_tokenizers.WhitespaceSplit,
                                             pre_tokenizers.Whitespace))
          and tok.truncation is None and tok.padding is None)
