"""Data pipeline: embedded corpus -> NLTK clean-up -> WordPiece -> packed, cached rows."""
from . import store
from .store import TokenStore, cached, default_config, prepare
from .tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_IDS, UNK_ID

__all__ = ["store", "prepare", "cached", "TokenStore", "default_config", "SPECIAL_IDS",
           "PAD_ID", "UNK_ID", "CLS_ID", "SEP_ID", "MASK_ID"]
