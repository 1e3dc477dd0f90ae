"""What identifies a run and its data, in one place: the fields a token store's cache key and a
workdir's checkpoint depend on."""

# The data settings a token store's bytes depend on: its cache key hashes them (data/store.py),
# with model.vocab_size. data.tokenizer names a file, which counts by its bytes.
STORE_FIELDS = ("sources", "weights", "seq_len", "lowercase", "split_sentences",
                "remove_stopwords", "remove_punctuation", "max_token_char_ratio", "min_chars",
                "dedup", "max_documents", "skip_bad_records", "tokenizer_sample_mb", "tokenizer",
                "pack")
# The settings a checkpoint depends on: the shape of its params and of its optimizer state (which
# optimizer holds it), and what its token ids mean and in which order they come. A workdir
# refuses a config that changes one; every other field (budget, logging, the optimizer's
# settings and schedule) may change on resume. data.tokenizer is not among them: the workdir's
# own tokenizer.json is compared by its bytes instead (workdir.check_tokenizer).
RUN_KEYS = ("model.arch", "model.vocab_size", "model.num_layers", "model.hidden_size",
            "model.num_heads", "model.ffn_size", "model.max_len", "optim.name",
            *(f"data.{f}" for f in STORE_FIELDS if f != "tokenizer"), "data.order")


def dotted(d: dict, key: str):
  """d["a"]["b"] for key "a.b" of a config saved as a plain dict (config.json); None where a
  part is missing, as it is for a field added to jaxbert after that config was written."""
  for part in key.split("."):
    d = d.get(part) if isinstance(d, dict) else None
  return d
