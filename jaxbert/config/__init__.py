"""The config tree every run starts from, what each of its fields may hold, and the config a run
uses once checked.

  defaults.py  default(): the tree, a comment per field (the crammed-BERT recipe, one GPU, a day)
  checks.py    FIELDS: each field's allowed values; check, check_field, finetune_max_len;
               ConfigError, which every refused setting raises
  resolved.py  resolve: a config checked and filled in for this machine (compute_dtype)
  keys.py      STORE_FIELDS, RUN_KEYS: the fields a token store and a checkpoint depend on;
               dotted: a field of a config saved as a plain dict

configs/*.py return this tree with their own overrides; `python run.py --config=FILE
--config.KEY=VALUE` overrides single fields, and an unknown key is an error. Everything is
imported from here (jaxbert.config), whichever module holds it.
"""

from jaxbert.config.checks import (COUNT, DTYPES, FIELDS, FRACTION, NON_NEGATIVE, ON_NONFINITE,
                                   OPTIONAL_COUNT, POSITIVE, RATE, ConfigError, OneOf, ParsedBy,
                                   Range, check, check_field, finetune_max_len)
from jaxbert.config.defaults import default
from jaxbert.config.keys import RUN_KEYS, STORE_FIELDS, dotted
from jaxbert.config.resolved import compute_dtype, resolve

__all__ = [
    "COUNT", "DTYPES", "FIELDS", "FRACTION", "NON_NEGATIVE", "ON_NONFINITE", "OPTIONAL_COUNT",
    "POSITIVE", "RATE", "RUN_KEYS", "STORE_FIELDS", "ConfigError", "OneOf", "ParsedBy", "Range",
    "check", "check_field", "compute_dtype", "default", "dotted", "finetune_max_len", "resolve",
]
