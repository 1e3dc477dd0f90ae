"""WordPiece tokenizer (BERT style) trained with HF tokenizers."""
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

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
