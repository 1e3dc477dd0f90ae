"""The workdir of a run: what identifies it, its lock, the data it reads and the weights it holds.

  WORKDIR/config.json     the resolved config (identity.py: read_config, write_config)
  WORKDIR/tokenizer.json  the tokenizer its checkpoints were trained with (store.py)
  WORKDIR/.lock           held by the run writing the workdir (lock.py)
  WORKDIR/checkpoints/    checkpoint.py; pretrained.py reads their params alone
  WORKDIR/metrics.jsonl   metrics.py; WORKDIR/tensorboard/ events.py; report.md report.py

training.py opens a workdir for a training run in one call (open_for_training). Everything is
imported from here (jaxbert.workdir), whichever module holds it.
"""

from .identity import (IncompatibleCheckpoint, check_compatible, incompatible_keys, read_config,
                       write_config)
from .lock import Lock, WorkdirError
from .pretrained import POOLER_FILE, SOURCE_KEYS, Pretrained, Source, pooler, pretrained, source
from .store import check_tokenizer, token_store
from .training import Training, open_for_training

__all__ = [
    "POOLER_FILE", "SOURCE_KEYS", "IncompatibleCheckpoint", "Lock", "Pretrained", "Source",
    "Training", "WorkdirError", "check_compatible", "check_tokenizer", "incompatible_keys",
    "open_for_training", "pooler", "pretrained", "read_config", "source", "token_store",
    "write_config",
]
