"""sknn: scikit-learn estimators for neural-network classification on PyTorch.

Every public name is imported on first use. ``import sknn`` imports nothing
heavy, ``from sknn import MLPClassifierTorch`` imports scikit-learn but not
torch or skorch: those load when a model is first fitted, predicts or is
unpickled, so that ``sknn --help``, ``get_params``, ``clone`` and ``repr``
stay fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sknn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["CNNClassifier", "MLPClassifierTorch", "MLPRegressorTorch",
           "SafeFormatError", "__version__", "load", "save", "to_onnx"]

#: public name -> the module that defines it, imported on first use (the
#: deployment functions need the optional extra sknn[deploy]: onnx, skl2onnx,
#: safetensors)
_LAZY = {"MLPClassifierTorch": "sknn._mlp", "CNNClassifier": "sknn._cnn",
         "MLPRegressorTorch": "sknn._regressor",
         "to_onnx": "sknn._onnx", "save": "sknn._safe", "load": "sknn._safe",
         "SafeFormatError": "sknn._safe"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sknn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
