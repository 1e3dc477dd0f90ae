"""The data a workdir reads: the token store whose ids mean what its checkpoints learned, and
WORKDIR/tokenizer.json, the tokenizer that says so."""

import os

import ml_collections

from jaxbert import files

from .identity import IncompatibleCheckpoint


def token_store(config, workdir: str):
  """The token store whose ids mean what the checkpoints of `workdir` learned.

  With data.tokenizer set, the store encoded with that tokenizer. Otherwise, once the workdir
  keeps a tokenizer.json (written by training, or by --mode=import), the cached store of the
  config's data settings if it was made with that tokenizer, else a store encoded with it: a
  workdir moved to another machine, or whose cache was cleared, gets the same ids back, although
  training a tokenizer is not bit-reproducible. A new workdir gets the store of its settings,
  which trains its tokenizer. check_tokenizer refuses any mismatch that remains.
  """
  from jaxbert import data  # here: NLTK and the pipeline load only when a store is read

  own = os.path.join(workdir, "tokenizer.json")
  vocab = config.model.vocab_size
  if config.data.tokenizer or not os.path.exists(own):
    return data.prepare(config.data, vocab)
  store = data.cached(config.data, vocab)
  if store is not None and files.same_bytes(store.tokenizer_path, own):
    return store
  settings = ml_collections.ConfigDict(config.data.to_dict())
  settings.tokenizer = own
  return data.prepare(settings, vocab)


def check_tokenizer(workdir: str, store_tokenizer: str, claim: bool = False):
  """Refuses a token store whose tokenizer is not WORKDIR/tokenizer.json, the one the workdir's
  checkpoints were trained with: the same ids would mean other words. `claim` (the run that owns
  the workdir) copies the store's tokenizer there when the workdir has none yet.

  A store is rebuilt when its cache is cleared or the workdir moves to another machine, and
  tokenizer training is not bit-reproducible across machines, so this can happen to anyone.
  """
  path = os.path.join(workdir, "tokenizer.json")
  with open(store_tokenizer, "rb") as f:
    theirs = f.read()
  if not os.path.exists(path):
    if claim:
      files.write_bytes(path, theirs)
    return
  with open(path, "rb") as f:
    if f.read() != theirs:
      raise IncompatibleCheckpoint(
          f"{path}, the tokenizer this workdir was trained with, differs from {store_tokenizer}, "
          "the one data.tokenizer gives; leave data.tokenizer empty to use the workdir's own, or "
          "start over in a new --workdir")
