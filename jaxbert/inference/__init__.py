"""Using what fine-tuning and pretraining saved: the Python API (loaded.py) and the commands
--mode=predict, embed and evaluate (commands.py) on texts streamed from files (inputs.py)."""
from .loaded import Classifier, Encoder

__all__ = ["Classifier", "Encoder"]
