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

__all__ = ["CNNClassifier", "MLPClassifierTorch", "__version__", "load", "save",
           "to_onnx"]

#: deployment functions, imported on first use: onnx, skl2onnx and safetensors
#: are the optional extra sknn[deploy]
_DEPLOYMENT = {"to_onnx": "sknn._onnx", "save": "sknn._safe", "load": "sknn._safe"}


def __getattr__(name):
    if name in _DEPLOYMENT:
        from importlib import import_module

        return getattr(import_module(_DEPLOYMENT[name]), name)
    raise AttributeError(f"module 'sknn' has no attribute {name!r}")
