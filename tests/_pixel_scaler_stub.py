"""``sknn.preprocessing.PixelScaler`` for the deployment tests: the real class
where this sknn has it, else a stand-in with its documented contract, installed
as ``sknn.preprocessing`` for the duration of a test."""

import importlib
import sys
import types

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class StandInPixelScaler(TransformerMixin, BaseEstimator):
    """The documented contract: ``transform(X)`` is float32
    ``X.reshape(N, -1) / max_value``; ``fit`` sets ``n_features_in_``,
    ``image_shape_`` and plain statistics."""

    def __init__(self, max_value=255.0):
        self.max_value = max_value

    def fit(self, X, y=None):
        X = np.asarray(X)
        shape = tuple(int(v) for v in X.shape[1:])
        self.image_shape_ = {4: shape, 3: (*shape, 1)}.get(X.ndim)
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        self.data_max_ = float(X.max())
        self.input_dtype_ = str(X.dtype)
        return self

    def transform(self, X):
        X = np.asarray(X)
        return X.reshape(len(X), -1).astype(np.float32) / self.max_value


def pixel_scaler(monkeypatch):
    """The PixelScaler class to test with; installs the stand-in if needed."""
    try:
        return importlib.import_module("sknn.preprocessing").PixelScaler
    except (ImportError, AttributeError):
        module = types.ModuleType("sknn.preprocessing")
        module.PixelScaler = StandInPixelScaler
        monkeypatch.setitem(sys.modules, "sknn.preprocessing", module)
        return StandInPixelScaler
