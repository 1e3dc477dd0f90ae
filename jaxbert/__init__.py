"""jaxbert: cram a BERT-style masked language model on one GPU in a day, fine-tune it, use it.

  from jaxbert import Classifier, Encoder   # a saved classifier; a pretrained workdir's encoder
"""

__all__ = ["Classifier", "Encoder"]


def __getattr__(name):
  # Loaded on first use: `import jaxbert.data` and run.py --help stay free of jax's start-up.
  if name in __all__:
    from jaxbert import inference

    return getattr(inference, name)
  raise AttributeError(f"module 'jaxbert' has no attribute {name!r}")
