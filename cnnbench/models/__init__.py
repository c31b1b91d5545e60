"""Models: importing this package registers every built-in family."""

from cnnbench.models import (  # noqa: F401  (importing a family file registers its models)
    alexnet,
    cifar_resnet,
    keras,
    lenet,
    resnet,
    vgg,
    zfnet,
)
from cnnbench.models.registry import MODEL_INFO, MODELS, count_parameters, create_model

__all__ = ["MODELS", "MODEL_INFO", "create_model", "count_parameters"]
