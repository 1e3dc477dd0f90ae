"""WordPiece tokenizer (BERT style) trained with HF tokenizers."""
import os
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from jaxbert.config import ConfigError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # position == id
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = SPECIAL_IDS = tuple(range(len(SPECIAL_TOKENS)))


def train(texts: Iterable[str], vocab_size: int, *, lowercase: bool = True,
          path: str | None = None) -> Tokenizer:
  """Train on a stream of texts; save to `path` (tokenizer.json) if given."""
  tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
  # Accents are stripped only when lowercasing, as in BERT uncased vs cased.
  tok.normalizer = normalizers.BertNormalizer(
      clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece(prefix="##")
  # The trainer adds special tokens first, in order, so their ids are fixed.
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
      continuing_subword_prefix="##", show_progress=False)
  tok.train_from_iterator(texts, trainer)
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
