"""Running an exported ONNX model with onnxruntime, its metadata checked.

:class:`OnnxModel` is what ``sknn predict`` runs for an ``.onnx`` file: the
graph :func:`sknn.to_onnx` wrote (one input ``X``; a classifier's outputs
``label`` and ``probabilities``, a regressor's one output ``variable``) and
the JSON :func:`sknn._onnx.input_metadata` stored
beside it. The file may come from anywhere, so the metadata is checked key by
key (types, shapes, finite numbers, agreement with the graph's input width)
before any of it reaches a :class:`~sknn.preprocessing.PixelScaler` or sizes
an image; anything else is one ``ValueError`` naming the key.
"""

import json
import math
import os

import numpy as np

from sknn._deps import require
from sknn._onnx import METADATA_KEY, PIXEL_SCALER_STATE

#: the largest input width and image side the metadata may declare
_MAX_FEATURES = 2**24  # 4096x4096 pixels, 64 MiB as float32
_MAX_SIDE = 2**16

_BACKGROUNDS = ("dark", "light", "mixed")
_COLOR_MODES = (None, "grayscale", "color")


class _Invalid(ValueError):
    """One bad value of the metadata (the key and what was wrong)."""


def _int(value, key, low=1, high=_MAX_FEATURES):
    if isinstance(value, bool) or not isinstance(value, int) or not (
            low <= value <= high):
        raise _Invalid(f"{key} must be an integer in [{low}, {high}]; got "
                       f"{_short(value)}")
    return value


def _real(value, key, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value)) or (positive and value <= 0):
        raise _Invalid(f"{key} must be a finite{' positive' if positive else ''} "
                       f"number; got {_short(value)}")
    return float(value)


def _choice(value, key, options):
    if value not in options or (value is not None and not isinstance(value, str)):
        raise _Invalid(f"{key} must be one of {list(options)}; got {_short(value)}")
    return value


def _strings(value, key):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{key} must be a list of strings; got {_short(value)}")
    return value


def _image_shape(value, key, n_features):
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 3:
        raise _Invalid(f"{key} must be [height, width, channels] or null; got "
                       f"{_short(value)}")
    shape = tuple(_int(v, key, 1, _MAX_SIDE) for v in value)
    if math.prod(shape) != n_features:
        raise _Invalid(f"{key} {list(shape)} holds {math.prod(shape)} values, but "
                       f"the graph takes rows of {n_features}")
    return shape


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _pixel_scaler(state, spec):
    """A fitted PixelScaler from the metadata's checked ``pixel_scaler``."""
    from sknn.preprocessing import PixelScaler

    if not isinstance(state, dict) or set(state) != set(PIXEL_SCALER_STATE):
        raise _Invalid(f"pixel_scaler must hold exactly the keys "
                       f"{list(PIXEL_SCALER_STATE)}")
    key = "pixel_scaler."
    n = _int(state["n_features_in_"], key + "n_features_in_")
    if n != spec["n_features"]:
        raise _Invalid(f"{key}n_features_in_ is {n}, but the graph takes rows of "
                       f"{spec['n_features']}")
    low, high = _pair(state["value_range_"], key + "value_range_")
    scaler = PixelScaler(max_value=_real(state["max_value"], key + "max_value",
                                         positive=True))
    scaler.n_features_in_ = n
    scaler.image_shape_ = _image_shape(state["image_shape_"], key + "image_shape_",
                                       n)
    scaler.mean_ = _real(state["mean_"], key + "mean_")
    scaler.value_range_ = (low, high)
    scaler.background_ = _choice(state["background_"], key + "background_",
                                 _BACKGROUNDS)
    scaler.color_mode_ = _choice(state["color_mode_"], key + "color_mode_",
                                 _COLOR_MODES)
    return scaler


def _pair(value, key):
    if not isinstance(value, list) or len(value) != 2:
        raise _Invalid(f"{key} must be [low, high]; got {_short(value)}")
    low, high = (_real(v, key) for v in value)
    if low > high:
        raise _Invalid(f"{key} must be [low, high] with low <= high; got "
                       f"{_short(value)}")
    return low, high


def read_input_spec(text, n_features):
    """The checked input spec of an ONNX file's metadata.

    Parameters
    ----------
    text : str
        The JSON stored under :data:`sknn._onnx.METADATA_KEY`.
    n_features : int or None
        The width of the graph's input, when the graph declares it.

    Returns
    -------
    spec : dict
        As :func:`sknn._pipeline.input_spec` gives it (``image_shape`` a tuple
        or None, ``categories`` empty), with ``pixel_scaler``: a fitted
        :class:`~sknn.preprocessing.PixelScaler` or None.

    Raises
    ------
    ValueError
        If the text is not such JSON: "invalid sknn metadata: <key> must
        be ...".
    """
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"it is not JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise _Invalid(f"it must be a JSON object; got {_short(raw)}")
    kind = _choice(raw.get("kind"), "kind", ("image", "table"))
    width = raw.get("n_features")
    spec = {"kind": kind, "n_features": _int(width, "n_features"),
            "categories": {}, "pixel_scaler": None}
    if n_features is not None and width != n_features:
        raise _Invalid(f"n_features is {width}, but the graph takes rows of "
                       f"{n_features}")
    classes = raw.get("classes", [])
    if not isinstance(classes, list) or not all(
            isinstance(c, (str, int, float, bool)) for c in classes):
        raise _Invalid(f"classes must be a list of labels; got {_short(classes)}")
    spec["classes"] = classes
    if kind == "image":
        spec["image_shape"] = _image_shape(raw.get("image_shape"), "image_shape",
                                           width)
        spec["max_value"] = _real(raw.get("max_value"), "max_value", positive=True)
        if raw.get("pixel_scaler") is not None:
            spec["pixel_scaler"] = _pixel_scaler(raw["pixel_scaler"], spec)
        return spec
    names = raw.get("feature_names")
    if names is not None and len(_strings(names, "feature_names")) != width:
        raise _Invalid(f"feature_names has {len(names)} names, but the graph "
                       f"takes rows of {width}")
    text_columns = _strings(raw.get("text", []), "text")
    if text_columns:
        raise _Invalid("text must be empty: an ONNX graph does not encode text")
    spec.update(feature_names=names, text=[])
    return spec


#: the one output of a regressor's graph (skl2onnx's name for it)
REGRESSOR_OUTPUT = "variable"


class OnnxModel:
    """An exported ONNX classifier or regressor run by onnxruntime (CPU).

    Parameters
    ----------
    path : str or path-like
        An ``.onnx`` file written by :func:`sknn.to_onnx` or ``sknn export``.

    Attributes
    ----------
    n_features_in_ : int or None
        Width of the graph's input rows.
    task_ : {'classification', 'regression'}
        What the graph predicts: labels and probabilities
        (:meth:`labels_and_proba`), or numbers (:meth:`predict`), read from
        its outputs.
    input_spec_ : dict
        How to read new input for it (:func:`read_input_spec`); for a file
        without sknn's metadata, a table of ``n_features_in_`` unnamed
        columns.

    Raises
    ------
    ImportError
        If onnxruntime is missing (``pip install 'sknn[deploy]'``).
    ValueError
        If the file is not a readable ONNX classifier graph (one 2-D input,
        at least the outputs label and probabilities) or regressor graph (one
        2-D input, one float output ``variable``), or its sknn metadata is
        invalid: "'<path>': invalid sknn metadata (sknn.input_spec): <key>
        must be ...". A file is checked completely before any of it is used.
    """

    def __init__(self, path):
        onnxruntime = require("onnxruntime", "reading .onnx models")
        where = repr(os.fspath(path))
        try:
            self.session_ = onnxruntime.InferenceSession(
                os.fspath(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{where} is not a readable ONNX model: "
                             f"{_first_line(exc)}") from exc
        inputs, outputs = self.session_.get_inputs(), self.session_.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        regressor = len(outputs) == 1 and outputs[0].name == REGRESSOR_OUTPUT \
            and outputs[0].type == "tensor(float)"
        if shape is None or len(shape) != 2 or (
                len(outputs) < 2 and not regressor) or inputs[0].type \
                not in ("tensor(float)", "tensor(uint8)"):
            raise ValueError(
                f"{where} is not an sknn classifier or regressor graph: it must "
                "take one 2-D float32 or uint8 input and give labels and "
                "probabilities, or the regressor's output 'variable'; export "
                "the model with sknn export or sknn.to_onnx")
        self.task_ = "regression" if regressor else "classification"
        self.input_name_ = inputs[0].name
        self.input_dtype_ = np.uint8 if inputs[0].type == "tensor(uint8)" \
            else np.float32
        width = shape[1]
        self.n_features_in_ = width if isinstance(width, int) and width > 0 \
            else None
        meta = self.session_.get_modelmeta().custom_metadata_map
        if METADATA_KEY in meta:
            try:
                self.input_spec_ = read_input_spec(meta[METADATA_KEY],
                                                   self.n_features_in_)
            except _Invalid as exc:
                raise ValueError(f"{where}: invalid sknn metadata "
                                 f"({METADATA_KEY}): {exc}; export the model "
                                 "again with sknn export or sknn.to_onnx") from None
        else:
            self.input_spec_ = {"kind": "table", "feature_names": None,
                                "text": [], "categories": {}, "pixel_scaler": None,
                                "n_features": self.n_features_in_}

    def _run(self, X):
        """The graph's outputs for the rows of X (images warn as the
        Pipeline's PixelScaler does, when the metadata carries its
        statistics)."""
        scaler = self.input_spec_.get("pixel_scaler")
        if scaler is not None:
            scaler.transform(X)  # for its warnings only
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        try:
            return X, self.session_.run(
                None, {self.input_name_: X.astype(self.input_dtype_)})
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"onnxruntime could not run the model on rows of "
                             f"{X.shape[1]} values: {_first_line(exc)}") from exc

    def predict(self, X):
        """A regressor graph's predictions for the rows of X, float64: 1-D for
        a single output, as the regressor's ``predict``.

        Raises
        ------
        ValueError
            If the graph is a classifier's (use :meth:`labels_and_proba`), or
            its output is not an (n_samples, n_outputs) matrix.
        """
        if self.task_ != "regression":
            raise ValueError("this ONNX graph is a classifier's: it gives labels "
                             "and probabilities (labels_and_proba)")
        X, (values,) = self._run(X)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) != len(X):
            raise ValueError("the ONNX graph's output is not an (n_samples, "
                             f"n_outputs) matrix: shape {values.shape}")
        return values.ravel() if values.shape[1] == 1 else values

    def labels_and_proba(self, X):
        """The graph's labels and float64 probabilities for the rows of X.

        Images unlike the training images warn as the Pipeline's PixelScaler
        does, when the metadata carries its statistics.
        """
        if self.task_ != "classification":
            raise ValueError("this ONNX graph is a regressor's: it gives numbers "
                             "(predict)")
        X, outputs = self._run(X)
        labels, proba = outputs[:2]
        labels, proba = np.asarray(labels), np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or len(proba) != len(X) or len(labels) != len(X):
            raise ValueError(
                "the ONNX graph's outputs are not labels and (n_samples, "
                f"n_classes) probabilities: shapes {labels.shape}, {proba.shape}")
        return labels, proba


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
