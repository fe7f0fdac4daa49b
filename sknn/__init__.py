"""sknn: scikit-learn estimators for neural-network classification on PyTorch.

``import sknn`` and ``from sknn import MLPClassifierTorch`` do not import torch
or skorch: they load when a model is first fitted, predicts or is unpickled,
so that ``sknn --help``, ``get_params``, ``clone`` and ``repr`` stay fast.
"""

from importlib.metadata import PackageNotFoundError, version

from sknn._cnn import CNNClassifier
from sknn._mlp import MLPClassifierTorch

try:
    __version__ = version("sknn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["CNNClassifier", "MLPClassifierTorch", "__version__"]
