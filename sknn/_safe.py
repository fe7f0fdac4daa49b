"""A model file that loading cannot turn into code execution.

:func:`save` writes a fitted sknn classifier, or a Pipeline of known
transformers ending in one, as a zip archive of two members:

- ``sknn.json``: what the model is (the class of each step from a fixed list,
  its constructor parameters, its fitted attributes such as ``classes_`` and
  the target encoding, the training history), in plain JSON;
- ``arrays.safetensors``: every numeric array, the network's weights among
  them (the torch ``state_dict``), in the safetensors format.

:func:`load` reads both with ``json`` and ``safetensors`` only: no pickle, no
``torch.load``, no import of a name taken from the file. Classes come from
:data:`SAFE_CLASSES`; anything else is refused before an object is built. The
archive comment holds the SHA-256 of ``sknn.json``, which records the SHA-256
of the arrays, so a truncated, corrupted or edited file is refused as a whole.

JSON values are tagged where JSON has no type of its own: ``{"__tuple__":
[...]}``, ``{"__float__": "nan"}``, ``{"__scalar__": 3, "dtype": "int64"}``,
``{"__array__": key}`` (an array in the safetensors member),
``{"__dtype__": "<f8"}`` (a numpy dtype),
``{"__strings__": [...], "dtype": "<U3", "shape": [...]}`` (an array of
strings), ``{"__dict__": [[key, value], ...]}`` (a dict whose keys are not
plain strings) and ``{"__object__": name, "params": {...}, "attributes":
{...}}`` (an object of a class in :data:`SAFE_CLASSES`).
"""

import hashlib
import importlib
import inspect
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from sknn._onnx import require
from sknn._persistence import atomic_write

FORMAT = "sknn-safe"
FORMAT_VERSION = 1
JSON_MEMBER = "sknn.json"
ARRAYS_MEMBER = "arrays.safetensors"
_DIGEST_PREFIX = b"sknn-json-sha256:"
#: sknn.json is a few kilobytes; refuse to inflate a member claiming more
_MAX_JSON_BYTES = 64 * 2**20

#: name in the file -> (module, attribute) of the classes a file may name
SAFE_CLASSES = {
    "sknn.MLPClassifierTorch": ("sknn._mlp", "MLPClassifierTorch"),
    "sknn.CNNClassifier": ("sknn._cnn", "CNNClassifier"),
    "sknn.MLPRegressorTorch": ("sknn._regressor", "MLPRegressorTorch"),
    "sknn.TargetEncoder": ("sknn._targets", "TargetEncoder"),
    "sknn.preprocessing.PixelScaler": ("sknn.preprocessing", "PixelScaler"),
    "sklearn.pipeline.Pipeline": ("sklearn.pipeline", "Pipeline"),
    "sklearn.preprocessing.StandardScaler": ("sklearn.preprocessing",
                                             "StandardScaler"),
    "sklearn.preprocessing.MinMaxScaler": ("sklearn.preprocessing", "MinMaxScaler"),
    "sklearn.preprocessing.MaxAbsScaler": ("sklearn.preprocessing", "MaxAbsScaler"),
    "sklearn.preprocessing.RobustScaler": ("sklearn.preprocessing", "RobustScaler"),
    "sklearn.preprocessing.Normalizer": ("sklearn.preprocessing", "Normalizer"),
    "sklearn.decomposition.PCA": ("sklearn.decomposition", "PCA"),
}

_ESTIMATORS = ("sknn.MLPClassifierTorch", "sknn.CNNClassifier",
               "sknn.MLPRegressorTorch")
#: fitted attributes that are not saved: the net is the weights, and
#: ``_rebuild`` derives the rest from them
_NOT_SAVED = {"net_", "device_", "coefs_", "intercepts_", "n_layers_"}
_SAFETENSORS_KINDS = "biuf"
_DTYPE_RE = re.compile(r"^[<>|=]?U\d+$")
#: plain numpy dtypes (numbers, bools, strings, objects), e.g. an input dtype
_DTYPE_NAME_RE = re.compile(r"^[<>|=]?([biufcSUO]\d*)$")
_ATTRIBUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$|^_[A-Za-z][A-Za-z0-9_]*$")


class SafeFormatError(ValueError):
    """The file is not a readable sknn safe file (or was changed after saving)."""


def _class(name):
    module, attribute = SAFE_CLASSES[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


def _name_of(obj):
    """The SAFE_CLASSES name of ``obj``'s exact class, or None."""
    for name in SAFE_CLASSES:
        cls = _class(name)
        if cls is not None and type(obj) is cls:
            return name
    return None


# --------------------------------------------------------------------- save
def save(model, path):
    """Save a fitted model in sknn's safe format: JSON and safetensors, no pickle.

    Parameters
    ----------
    model : MLPClassifierTorch, CNNClassifier, MLPRegressorTorch or Pipeline
        A fitted sknn classifier, or a fitted Pipeline of the transformers in
        ``sknn._safe.SAFE_CLASSES`` (StandardScaler, MinMaxScaler, MaxAbsScaler,
        RobustScaler, Normalizer, PCA, ``sknn.preprocessing.PixelScaler``)
        ending in one.
    path : str or path-like
        Destination file, by convention ending in ``.sknn``. Its folder must
        exist. The write is atomic: on any error an earlier file at ``path``
        stays as it was and no partial file is left.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    ImportError
        If safetensors is missing (``pip install 'sknn[deploy]'``).
    TypeError
        If a step is of a class the format does not know.
    ValueError
        If the model is not fitted, has ``callbacks`` set (skorch callback
        objects are code: set them to None first), or holds a value JSON
        cannot carry.
    FileNotFoundError
        If the destination folder does not exist.

    See Also
    --------
    load : Read the file back.
    """
    safetensors_numpy = require("safetensors.numpy", "sknn.save")
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot save to {str(path)!r}: the folder {str(folder)!r} does not "
            "exist. Create it first or choose another path.")
    writer = _Writer()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "model": writer.model(model),
    }
    arrays = safetensors_numpy.save(writer.arrays)
    document["arrays_sha256"] = hashlib.sha256(arrays).hexdigest()
    text = json.dumps(document, indent=1, allow_nan=False).encode("utf-8")
    atomic_write(path, lambda f: _write_archive(f, text, arrays))
    return path


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("sknn", "scikit-learn", "torch", "numpy", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def _write_archive(f, text, arrays):
    with zipfile.ZipFile(f, "w") as archive:
        archive.writestr(JSON_MEMBER, text, compress_type=zipfile.ZIP_DEFLATED)
        # weights do not compress; stored, they can be read in place
        archive.writestr(ARRAYS_MEMBER, arrays, compress_type=zipfile.ZIP_STORED)
        archive.comment = _DIGEST_PREFIX + hashlib.sha256(text).hexdigest().encode()


class _Writer:
    """Model -> JSON-ready document; numeric arrays collected in ``arrays``."""

    def __init__(self):
        self.arrays = {}

    def model(self, model):
        from sklearn.pipeline import Pipeline
        from sklearn.utils.validation import check_is_fitted

        if isinstance(model, Pipeline):
            last = model.steps[-1][1]
            if last is not None and last != "passthrough":
                check_is_fitted(last)
            return self.pipeline(model)
        if hasattr(model, "best_estimator_"):
            raise TypeError(
                f"sknn.save saves a fitted estimator or Pipeline, not a "
                f"{type(model).__name__}: save its best_estimator_.")
        check_is_fitted(model)
        return self.object(model, "model")

    def pipeline(self, pipeline, path="model"):
        params = pipeline.get_params(deep=False)
        steps = []
        for i, (name, step) in enumerate(params.pop("steps")):
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append([name, step])
            else:
                steps.append([name, self.object(step, f"{path}/steps/{i}")])
        if params.get("memory") is not None and not isinstance(params["memory"], str):
            params["memory"] = None  # a joblib.Memory: a cache, not the model
        return {"__object__": "sklearn.pipeline.Pipeline",
                "params": self.encode(params, f"{path}/params"), "steps": steps}

    def object(self, obj, path):
        name = _name_of(obj)
        if name is None:
            known = ", ".join(sorted(n.rsplit(".", 1)[1] for n in SAFE_CLASSES))
            raise TypeError(
                f"sknn.save cannot save a {type(obj).__module__}."
                f"{type(obj).__qualname__} (at {path}): the safe format holds only "
                f"these classes, whose state it knows: {known}. Save this model "
                "with joblib.dump instead, if pickle is acceptable where it will "
                "be loaded.")
        if name == "sklearn.pipeline.Pipeline":
            raise TypeError(
                f"sknn.save saves one Pipeline, not a Pipeline nested in another "
                f"(at {path}): flatten the steps into one Pipeline.")
        params = obj.get_params(deep=False)
        node = {"__object__": name}
        if name in _ESTIMATORS:
            if params.get("callbacks") is not None:
                raise ValueError(
                    "sknn.save cannot save a model whose 'callbacks' parameter is "
                    "set: skorch callbacks are Python objects, which the safe "
                    "format does not hold. Set it to None first, e.g. "
                    "model.set_params(callbacks=None) (for a Pipeline: "
                    "pipe.set_params(<step>__callbacks=None)); predictions do "
                    "not depend on it.")
            state = obj.net_.module_.state_dict()
            for key, tensor in state.items():
                self.arrays[f"{path}/module/{key}"] = (
                    tensor.detach().cpu().contiguous().numpy())
            node["module"] = f"{path}/module/"
            # skorch's per-epoch records, from which partial_fit and warm-started
            # fits continue loss_curve_, t_ and history_; per-batch sizes dropped
            node["net_history"] = self.encode(
                [{k: v for k, v in row.items() if k != "batches"}
                 for row in obj.net_.history], f"{path}/net_history")
        fitted = {key: value for key, value in vars(obj).items()
                  if key not in params and key not in _NOT_SAVED}
        node["params"] = self.encode(params, f"{path}/params")
        node["attributes"] = self.encode(fitted, f"{path}/attributes")
        return node

    def encode(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, np.integer):
            return value
        if isinstance(value, float) and not isinstance(value, np.floating):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.dtype) and _DTYPE_NAME_RE.match(value.str):
            return {"__dtype__": value.str}
        if isinstance(value, np.generic) and value.dtype.kind in _SAFETENSORS_KINDS:
            return {"__scalar__": self.encode(value.item(), path),
                    "dtype": value.dtype.str}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}")
                                  for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.encode(v, f"{path}/{k}") for k, v in value.items()}
            return {"__dict__": [[self.encode(k, path), self.encode(v, f"{path}/{k}")]
                                 for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in _SAFETENSORS_KINDS:
                self.arrays[path] = np.ascontiguousarray(value)
                return {"__array__": path}
            if value.dtype.kind == "U" or (value.dtype.kind == "O" and all(
                    isinstance(v, str) for v in value.ravel())):
                return {"__strings__": value.ravel().tolist(),
                        "dtype": "object" if value.dtype.kind == "O"
                        else value.dtype.str,
                        "shape": list(value.shape)}
        if _name_of(value) is not None:
            return self.object(value, path)
        raise TypeError(
            f"sknn.save cannot save {path} = {_short_repr(value)} of type "
            f"{type(value).__name__}: the safe format holds numbers, strings, "
            "lists, tuples, dicts and numeric or string arrays. Set it to one of "
            "those (e.g. random_state to an int) before saving.")


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------- load
def load(path):
    """Load a model saved by :func:`save`, without pickle and without running
    code from the file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` (``.sknn``).

    Returns
    -------
    model : MLPClassifierTorch, CNNClassifier, MLPRegressorTorch or Pipeline
        The fitted model, on the CPU. ``predict_proba`` gives what the saved
        model gave; ``partial_fit`` and ``fit`` with ``warm_start=True``
        continue training from the saved weights (with a new optimizer).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImportError
        If safetensors is missing (``pip install 'sknn[deploy]'``).
    ValueError
        (:class:`sknn._safe.SafeFormatError`) If the file is not an sknn safe
        file, is truncated or corrupted, was changed after saving, names a
        class outside the format's list, or does not fit together. Nothing is
        returned half-loaded.

    See Also
    --------
    save : Write the file.
    """
    safetensors_numpy = require("safetensors.numpy", "sknn.load")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"The model file {str(path)!r} does not exist. Pass the path that "
            "sknn.save (or 'sknn train --out model.sknn') wrote.")
    text, arrays_bytes = _read_archive(path)
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"its {JSON_MEMBER} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _error(path, f"its {JSON_MEMBER} does not declare format {FORMAT!r}")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise _error(path, f"it has format_version {version!r}; this sknn reads "
                           f"version {FORMAT_VERSION}. Upgrade sknn to read it")
    if document.get("arrays_sha256") != hashlib.sha256(arrays_bytes).hexdigest():
        raise _error(path, f"its {ARRAYS_MEMBER} does not match the checksum "
                           "recorded at saving: it was changed or corrupted")
    try:
        arrays = safetensors_numpy.load(arrays_bytes)
    except Exception as exc:  # safetensors' own error type varies by version
        raise _error(path, f"its {ARRAYS_MEMBER} is unreadable ({exc})") from exc
    reader = _Reader(arrays)
    try:
        model = reader.model(document.get("model"))
    except SafeFormatError as exc:
        raise _error(path, str(exc)) from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RuntimeError) as exc:
        raise _error(path, f"its contents do not fit together "
                           f"({type(exc).__name__}: {exc})") from exc
    unused = set(arrays) - reader.used
    if unused:
        raise _error(path, f"it holds arrays no part of the model uses: "
                           f"{sorted(unused)[:5]}")
    return model


def _error(path, reason):
    return SafeFormatError(f"Cannot load {str(path)!r} as an sknn model: {reason}.")


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _read_archive(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if sorted(names) != sorted([JSON_MEMBER, ARRAYS_MEMBER]):
                raise _error(path, f"it holds {names}, not the two members "
                                   f"{JSON_MEMBER!r} and {ARRAYS_MEMBER!r} of an "
                                   "sknn safe file")
            if archive.getinfo(JSON_MEMBER).file_size > _MAX_JSON_BYTES:
                raise _error(path, f"its {JSON_MEMBER} is implausibly large")
            comment = archive.comment
            text = archive.read(JSON_MEMBER)
            arrays = archive.read(ARRAYS_MEMBER)
    except zipfile.BadZipFile as exc:
        hint = ""
        with open(path, "rb") as f:
            head = f.read(2)
        if head and head[0] == 0x80:
            hint = (" It looks like a pickle/joblib file: load it with "
                    "joblib.load only if you trust its source")
        raise _error(path, f"it is not a complete zip archive ({exc}); the file "
                           f"is truncated, corrupted or of another kind.{hint}"
                      .rstrip(".")) from exc
    except (OSError, EOFError) as exc:
        raise _error(path, f"it could not be read ({exc})") from exc
    expected = _DIGEST_PREFIX + hashlib.sha256(text).hexdigest().encode()
    if comment != expected:
        raise _error(path, f"its {JSON_MEMBER} does not match the checksum "
                           "recorded at saving: it was edited or corrupted")
    return text, arrays


class _Reader:
    """JSON document + arrays -> model, building only SAFE_CLASSES objects."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()

    def model(self, node):
        if isinstance(node, dict) and node.get("__object__") == (
                "sklearn.pipeline.Pipeline"):
            return self.pipeline(node)
        return self.object(node)

    def pipeline(self, node):
        from sklearn.pipeline import Pipeline

        steps = []
        for entry in _expect(node.get("steps"), list, "Pipeline steps"):
            name, step = _expect(entry, list, "a Pipeline step")
            _expect(name, str, "a Pipeline step's name")
            if step is not None and step != "passthrough":
                step = self.object(step)
            steps.append((name, step))
        params = self.params(Pipeline, node, "Pipeline")
        return Pipeline(steps, **params)

    def params(self, cls, node, name):
        params = _expect(self.decode(node.get("params")), dict,
                         f"the parameters of {name}")
        allowed = set(inspect.signature(cls).parameters) - {"steps"}
        unknown = set(params) - allowed
        if unknown:
            raise SafeFormatError(
                f"{name} has no parameter(s) {sorted(unknown)}; the file comes "
                "from another version of sknn or scikit-learn, or was edited")
        return params

    def object(self, node):
        if not isinstance(node, dict) or not isinstance(node.get("__object__"), str):
            raise SafeFormatError(f"expected a saved object, got {_short_repr(node)}")
        name = node["__object__"]
        if name not in SAFE_CLASSES or name == "sklearn.pipeline.Pipeline":
            raise SafeFormatError(
                f"it names the class {name!r}, which the safe format does not "
                "load (it loads " + ", ".join(sorted(SAFE_CLASSES)) + ")")
        cls = _class(name)
        if cls is None:
            raise SafeFormatError(
                f"it needs {name}, which this installation of sknn lacks; "
                "upgrade sknn")
        obj = cls(**self.params(cls, node, name))
        attributes = _expect(self.decode(node.get("attributes")), dict,
                             f"the fitted attributes of {name}")
        for key in attributes:
            # data only: never a name that would shadow a method or property
            if not _ATTRIBUTE_RE.match(key) or hasattr(cls, key):
                raise SafeFormatError(f"{name} cannot have an attribute {key!r}")
        if name in _ESTIMATORS:
            self.rebuild(obj, node, attributes)
        for key, value in attributes.items():
            setattr(obj, key, value)
        return obj

    def rebuild(self, estimator, node, attributes):
        import torch
        from sklearn.base import is_regressor
        from skorch.history import History

        targets = (("n_outputs_", "out_activation_") if is_regressor(estimator)
                   else ("target_encoder_", "classes_"))
        missing = {*targets, "n_features_in_"} - set(attributes)
        if missing:
            raise SafeFormatError(f"the estimator lacks {sorted(missing)}")
        # all fitted metadata first (input shape, target encoding, input dtype
        # ...): _rebuild builds the net from it and derives the rest
        for key, value in attributes.items():
            setattr(estimator, key, value)
        prefix = _expect(node.get("module"), str, "the weights' key prefix")
        state = {}
        for key, array in self.arrays.items():
            if key.startswith(prefix):
                state[key[len(prefix):]] = torch.from_numpy(array.copy())
                self.used.add(key)
        if not state:
            raise SafeFormatError("the estimator has no weights")
        try:
            estimator._rebuild(state)
        except RuntimeError as exc:
            raise SafeFormatError(
                "the weights do not fit the network its parameters describe "
                f"({str(exc).splitlines()[0]})") from exc
        rows = _expect(self.decode(node.get("net_history", [])), list,
                       "the training history")
        estimator.net_.history = History(
            [{**_expect(row, dict, "an epoch record"), "batches": []} for row in rows])

    def decode(self, value):
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            raise SafeFormatError(f"unexpected JSON value {_short_repr(value)}")
        if _is_tagged(value, "__tuple__"):
            return tuple(self.decode(v) for v in _expect(
                value["__tuple__"], list, "a tuple"))
        if _is_tagged(value, "__float__"):
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise SafeFormatError(f"bad float {text!r}")
            return float(text)
        if _is_tagged(value, "__scalar__", "dtype"):
            dtype = np.dtype(_expect(value["dtype"], str, "a dtype"))
            if dtype.kind not in _SAFETENSORS_KINDS:
                raise SafeFormatError(f"bad scalar dtype {dtype}")
            return dtype.type(self.decode(value["__scalar__"]))
        if _is_tagged(value, "__dtype__"):
            text = _expect(value["__dtype__"], str, "a dtype")
            if not _DTYPE_NAME_RE.match(text):
                raise SafeFormatError(f"bad dtype {text!r}")
            return np.dtype(text)
        if _is_tagged(value, "__array__"):
            key = value["__array__"]
            if key not in self.arrays:
                raise SafeFormatError(f"the array {key!r} is missing")
            self.used.add(key)
            return self.arrays[key].copy()
        if _is_tagged(value, "__strings__", "dtype", "shape"):
            items = _expect(value["__strings__"], list, "strings")
            if not all(isinstance(s, str) for s in items):
                raise SafeFormatError("a string array holds non-strings")
            dtype = value["dtype"]
            if dtype != "object" and not _DTYPE_RE.match(str(dtype)):
                raise SafeFormatError(f"bad string dtype {dtype!r}")
            shape = tuple(_expect(value["shape"], list, "a shape"))
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array.astype(dtype).reshape(shape)
        if _is_tagged(value, "__dict__"):
            return {self.decode(k): self.decode(v) for k, v in _expect(
                value["__dict__"], list, "dict items")}
        if _is_tagged(value, "__object__", "params", "attributes"):
            return self.object(value)
        if any(k.startswith("__") for k in value):
            raise SafeFormatError(f"unknown tag in {_short_repr(value)}")
        return {k: self.decode(v) for k, v in value.items()}


def _is_tagged(value, tag, *others):
    return isinstance(value, dict) and tag in value and set(value) == {tag, *others}


def _expect(value, kind, what):
    if not isinstance(value, kind):
        raise SafeFormatError(
            f"{what} should be a {kind.__name__}, got {_short_repr(value)}")
    return value


__all__ = ["FORMAT", "SAFE_CLASSES", "SafeFormatError", "load", "save"]
