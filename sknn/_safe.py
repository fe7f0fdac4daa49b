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
{...}}`` (an object of a class in :data:`SAFE_CLASSES`). ``"arrays"`` lists
each tensor's dtype and shape: the arrays member is bounded by it before it is
read (:mod:`sknn._safe_checks` holds every bound and the parameter table).
"""

import hashlib
import importlib
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from sknn import _safe_checks as checks
from sknn._base import DERIVED_ATTRIBUTES
from sknn._deps import require
from sknn._persistence import atomic_write
from sknn._pipeline import final_estimator, is_passthrough
from sknn._safe_checks import ESTIMATORS, SAFE_CLASSES, SafeFormatError
from sknn._safe_checks import expect as _expect
from sknn._safe_checks import is_tagged as _is_tagged
from sknn._safe_checks import short as _short_repr

FORMAT = "sknn-safe"
FORMAT_VERSION = 1
JSON_MEMBER = "sknn.json"
ARRAYS_MEMBER = "arrays.safetensors"
_DIGEST_PREFIX = b"sknn-json-sha256:"

#: fitted attributes that are not saved: the net is the weights, and
#: ``_rebuild`` derives the rest from them
_NOT_SAVED = {"net_", "device_", *DERIVED_ATTRIBUTES}
_SAFETENSORS_KINDS = "biuf"
_ATTRIBUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$|^_[A-Za-z][A-Za-z0-9_]*$")


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
        If the model is not fitted, or has a parameter that reaches outside
        the model: ``callbacks`` (skorch callback objects are code, and
        several write files) or a Pipeline's ``memory`` (a cache folder whose
        pickles fit() would load). Set them to None first; predictions do not
        depend on them. (``sknn._safe_checks.PARAMETERS`` lists every
        parameter of every class the format holds, allowed or refused, and
        why.)
    FileNotFoundError
        If the destination folder does not exist.
    sknn._persistence.OutputPathError
        If ``path`` is a directory, a device, a FIFO or a read-only file. A
        symlink is followed: its target is written, the link kept; an existing
        file keeps its permissions.

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
    document["arrays"] = checks.manifest(writer.arrays)
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
            last = final_estimator(model)
            if not is_passthrough(last):
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
        self.check(pipeline, "sklearn.pipeline.Pipeline", params, path)
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
        self.check(obj, name, params, path)
        node = {"__object__": name}
        if name in ESTIMATORS:
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

    @staticmethod
    def check(obj, name, params, path):
        try:
            checks.check_parameters(name, params, "save")
        except checks.ParameterRefused as exc:
            raise ValueError(f"sknn.save cannot save {path}: {exc}.") from None

    def encode(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, np.integer):
            return value
        if isinstance(value, float) and not isinstance(value, np.floating):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.dtype) and checks.DTYPE_NAME_RE.match(value.str):
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
                # and the memory order: a product with a Fortran-ordered array
                # (PCA's components_) rounds differently in BLAS otherwise
                fortran = value.ndim > 1 and not value.flags.c_contiguous \
                    and value.flags.f_contiguous
                return {"__array__": path, "order": "F"} if fortran else {
                    "__array__": path}
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
    sknn.SafeFormatError
        (a ``ValueError``) If the file is not an sknn safe file, is truncated
        or corrupted, was changed after saving, names a class outside the
        format's list, sets a parameter that reaches outside the model (a
        Pipeline's ``memory``, ``callbacks``) or state rebuilt from the
        weights (``net_``, ``device_``...), declares members or tensors larger
        than the file can hold, or an architecture that does not fit its
        weights. These are checked before anything large is allocated, and
        every malformed file raises this one error, at load: a loaded model
        has predicted one row. Nothing is returned half-loaded.

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
    try:
        return _load(path, safetensors_numpy)
    except SafeFormatError:
        raise
    except (checks.ArchiveError, checks.ParameterRefused) as exc:
        raise _error(path, str(exc)) from exc
    except MemoryError as exc:  # bounded above; a last line of defence
        raise _error(path, "it asks for more memory than is available") from exc
    except Exception as exc:  # whatever a damaged file provokes: one error
        raise _error(path, f"its contents do not fit together "
                           f"({type(exc).__name__}: {exc})") from exc


def _load(path, safetensors_numpy):
    document, arrays_bytes = _read_archive(path)
    try:
        arrays = safetensors_numpy.load(arrays_bytes)
    except Exception as exc:  # safetensors' own error type varies by version
        raise _error(path, f"its {ARRAYS_MEMBER} is unreadable ({exc})") from exc
    del arrays_bytes
    reader = _Reader(arrays)
    try:
        model = reader.model(document.get("model"))
    except SafeFormatError as exc:
        raise _error(path, str(exc)) from exc
    unused = set(arrays) - reader.used
    if unused:
        raise _error(path, f"it holds arrays no part of the model uses: "
                           f"{sorted(unused)[:5]}")
    checks.check_predicts(model)
    return model


def _error(path, reason):
    return SafeFormatError(f"Cannot load {str(path)!r} as an sknn model: {reason}.")


def _read_archive(path):
    """(the parsed sknn.json, the bytes of arrays.safetensors), each member
    bounded before it is inflated (see :mod:`sknn._safe_checks`)."""
    file_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if sorted(names) != sorted([JSON_MEMBER, ARRAYS_MEMBER]):
                raise _error(path, f"it holds {names[:5]}, not the two members "
                                   f"{JSON_MEMBER!r} and {ARRAYS_MEMBER!r} of an "
                                   "sknn safe file")
            for info in infos:
                checks.check_member(info, file_size, info.filename)
            json_info = archive.getinfo(JSON_MEMBER)
            if json_info.file_size > checks.MAX_JSON_BYTES:
                raise _error(path, f"its {JSON_MEMBER} is implausibly large")
            text = checks.read_member(archive, json_info, JSON_MEMBER,
                                      checks.JsonCounter())
            expected = _DIGEST_PREFIX + hashlib.sha256(text).hexdigest().encode()
            if archive.comment != expected:
                raise _error(path, f"its {JSON_MEMBER} does not match the checksum "
                                   "recorded at saving: it was edited or corrupted")
            document = _parse(path, text)
            declared = document.get("arrays")
            arrays_info = archive.getinfo(ARRAYS_MEMBER)
            checks.check_arrays_size(arrays_info, declared)
            arrays = checks.read_member(archive, arrays_info, ARRAYS_MEMBER)
    except zipfile.BadZipFile as exc:
        hint = checks.pickle_hint(path)
        raise _error(path, f"it is not a complete zip archive ({exc}); the file "
                           f"is truncated, corrupted or of another kind.{hint}"
                      .rstrip(".")) from exc
    except (OSError, EOFError) as exc:
        raise _error(path, f"it could not be read ({exc})") from exc
    if document.get("arrays_sha256") != hashlib.sha256(arrays).hexdigest():
        raise _error(path, f"its {ARRAYS_MEMBER} does not match the checksum "
                           "recorded at saving: it was changed or corrupted")
    checks.check_safetensors_header(arrays, declared)
    return document, arrays


def _parse(path, text):
    try:
        document = json.loads(text, parse_constant=checks.refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"its {JSON_MEMBER} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _error(path, f"its {JSON_MEMBER} does not declare format {FORMAT!r}")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise _error(path, f"it has format_version {version!r}; this sknn reads "
                           f"version {FORMAT_VERSION}. Upgrade sknn to read it")
    return document


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
        params = self.params("sklearn.pipeline.Pipeline", node)
        return checks.validated(Pipeline(steps, **params), "Pipeline")

    def params(self, name, node):
        params = _expect(self.decode(node.get("params"), objects=False), dict,
                         f"the parameters of {name}")
        if "steps" in params:
            raise SafeFormatError(f"{name}'s steps are not a parameter")
        try:
            checks.check_parameters(name, params, "load")
        except checks.ParameterRefused as exc:
            raise SafeFormatError(str(exc)) from None
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
        params = self.params(name, node)
        obj = checks.validated(cls(**params), name)
        attributes = _expect(self.decode(node.get("attributes")), dict,
                             f"the fitted attributes of {name}")
        for key in attributes:
            # data only: never a name that would shadow a method or property,
            # a parameter, or state rebuilt from the weights (net_, device_...)
            if (not _ATTRIBUTE_RE.match(key) or hasattr(cls, key)
                    or key in checks.PARAMETERS[name] or key in _NOT_SAVED):
                raise SafeFormatError(f"{name} cannot have an attribute {key!r}")
        if name in ESTIMATORS:
            self.rebuild(obj, node, attributes)
        else:
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
                state[key[len(prefix):]] = torch.from_numpy(array)
                self.used.add(key)
        if not state:
            raise SafeFormatError("the estimator has no weights")
        if not is_regressor(estimator) and not isinstance(
                estimator.target_encoder_, _class("sknn.TargetEncoder")):
            raise SafeFormatError("its target_encoder_ is not a TargetEncoder")
        # before anything is allocated: the declared network, built on the
        # meta device, against the weights
        checks.check_architecture(estimator, state)
        estimator._rebuild({key: t.clone() for key, t in state.items()})
        # what _rebuild derived from the weights is not the file's to override
        for key, value in attributes.items():
            if getattr(estimator, key) is not value and not checks.same(
                    getattr(estimator, key), value):
                raise SafeFormatError(
                    f"its attribute {key!r} contradicts the network rebuilt "
                    "from the weights")
        rows = _expect(self.decode(node.get("net_history", [])), list,
                       "the training history")
        estimator.net_.history = History(
            [{**_expect(row, dict, "an epoch record"), "batches": []} for row in rows])

    def decode(self, value, objects=True):
        """JSON -> value; ``objects=False`` (parameters): plain data only."""
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(v, objects) for v in value]
        if not isinstance(value, dict):
            raise SafeFormatError(f"unexpected JSON value {_short_repr(value)}")
        if _is_tagged(value, "__tuple__"):
            return tuple(self.decode(v, objects) for v in _expect(
                value["__tuple__"], list, "a tuple"))
        if _is_tagged(value, "__float__"):
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise SafeFormatError(f"bad float {_short_repr(text)}")
            return float(text)
        if _is_tagged(value, "__scalar__", "dtype"):
            dtype = checks.numpy_dtype(value["dtype"])
            if dtype.kind not in _SAFETENSORS_KINDS:
                raise SafeFormatError(f"bad scalar dtype {dtype}")
            scalar = self.decode(value["__scalar__"])
            if type(scalar) not in (bool, int, float):
                raise SafeFormatError(f"bad scalar {_short_repr(scalar)}")
            return dtype.type(scalar)
        if _is_tagged(value, "__dtype__"):
            return checks.numpy_dtype(value["__dtype__"])
        if _is_tagged(value, "__array__") or _is_tagged(value, "__array__", "order"):
            key, order = value["__array__"], value.get("order", "C")
            if not isinstance(key, str) or key not in self.arrays or order not in (
                    "C", "F"):
                raise SafeFormatError(f"bad array reference {_short_repr(value)}")
            self.used.add(key)
            return self.arrays[key].copy(order=order)
        if _is_tagged(value, "__strings__", "dtype", "shape"):
            return checks.strings(value)
        if _is_tagged(value, "__dict__"):
            items = _expect(value["__dict__"], list, "dict items")
            if not all(isinstance(i, list) and len(i) == 2 for i in items):
                raise SafeFormatError("dict items should be pairs")
            return {self.decode(k, objects): self.decode(v, objects)
                    for k, v in items}
        if _is_tagged(value, "__object__", "params", "attributes"):
            if not objects:
                raise SafeFormatError(
                    f"a parameter holds an object ({_short_repr(value)}); "
                    "parameters are plain data")
            return self.object(value)
        if any(k.startswith("__") for k in value):
            raise SafeFormatError(f"unknown tag in {_short_repr(value)}")
        return {k: self.decode(v, objects) for k, v in value.items()}


__all__ = ["FORMAT", "SAFE_CLASSES", "SafeFormatError", "load", "save"]
