"""One way into a workdir for training: everything the loop needs before its first step."""

import contextlib
import typing

import jax
import ml_collections
from jax.experimental import multihost_utils

from jaxbert import checkpoint

from .identity import check_compatible, read_config
from .lock import Lock
from .pretrained import Source, source
from .store import check_tokenizer, token_store


class Training(typing.NamedTuple):
  """An open workdir, as the training loop reads and writes it."""
  config: ml_collections.ConfigDict  # the run's, the micro-batch of a resumed run carried over
  workdir: str
  store: typing.Any  # data.TokenStore: ids the workdir's tokenizer gave
  source: Source | None  # continued pretraining (init_from), for a run with no checkpoint yet
  checkpoints: checkpoint.Checkpoints
  primary: bool  # the first process: the one that writes the workdir's files


@contextlib.contextmanager
def open_for_training(config: ml_collections.ConfigDict, workdir: str):
  """Yields the workdir opened for a run of a resolved config, released when the block ends.

  In order: a workdir with a checkpoint must be of the same run (config.RUN_KEYS) and keeps its
  micro-batch (the data position counts micro-batches); a new one may start from init_from.
  Then the token store, built by the first process while the others wait and then find it in
  the shared cache; it comes before the workdir is touched, so bad data leaves nothing behind.
  Only then is the workdir created and locked (by the first process), its checkpoints opened,
  and the store's tokenizer checked against (or claimed as) the workdir's own.
  """
  config = ml_collections.ConfigDict(config.to_dict())  # the caller's config is left as it was
  start = None
  if checkpoint.has_checkpoint(workdir):  # resumed: init_from was read when the run started
    if config.train.micro_batch == 0:
      config.train.micro_batch = read_config(workdir).train.micro_batch
    check_compatible(workdir, config)
  elif config.init_from:
    start = source(config)
  store_config = config
  if start is not None and not config.data.tokenizer:
    # Encoded with the source's tokenizer, which the workdir then keeps as its own; config.json
    # keeps data.tokenizer "" (the workdir's own), so a resumed run needs init_from no more.
    store_config = ml_collections.ConfigDict(config.to_dict())
    store_config.data.tokenizer = start.tokenizer
  primary = jax.process_index() == 0
  if primary:
    store = token_store(store_config, workdir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("token store")
  if not primary:
    store = token_store(store_config, workdir)
  with Lock(workdir) if primary else contextlib.nullcontext(), \
      checkpoint.Checkpoints(workdir, config.train.keep) as ckpts:
    check_tokenizer(workdir, store.tokenizer_path, claim=primary)
    yield Training(config, workdir, store, start, ckpts, primary)
