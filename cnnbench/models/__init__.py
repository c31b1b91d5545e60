"""Models: importing this package registers every built-in family."""

from cnnbench.models import keras, lenet  # noqa: F401  (registers the families)
from cnnbench.models.registry import MODEL_INFO, MODELS, count_parameters, create_model

__all__ = ["MODELS", "MODEL_INFO", "create_model", "count_parameters"]
