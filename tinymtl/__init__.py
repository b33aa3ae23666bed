"""tinymtl: multi-task learning from scratch in NumPy."""

from .errors import CheckpointError, DataError, OptionError, TinyMTLError, TrainingDiverged
from .heads import Classify, Regress
from .network import MultiTaskNet

__all__ = ["MultiTaskNet", "Classify", "Regress", "TinyMTLError", "DataError",
           "CheckpointError", "OptionError", "TrainingDiverged"]
__version__ = "0.1.0"
