"""The bounds a ``.sknn`` file is checked against before it is believed.

:mod:`sknn._safe` builds objects of a fixed list of classes
(:mod:`sknn._safe_classes`, with what each parameter may hold) from a file
that may be hostile. This module holds what it checks before building
anything:

- the archive's members: their compression, their declared sizes (bounded by
  the file's size and by the tensors the JSON declares), read with bounded
  reads so that a lying header cannot inflate a member past its cap;
- the network: the estimator's architecture is built on torch's ``meta``
  device (no memory) and compared, tensor by tensor, with the file's weights
  before the real network is allocated.
"""

import json
import math
import re
import warnings
import zipfile

import numpy as np


class SafeFormatError(ValueError):
    """A file :func:`load` refuses: not an sknn safe file, truncated,
    corrupted, changed after saving, or describing something the format does
    not allow (a class outside ``SAFE_CLASSES``, a parameter naming a path,
    a cache or a callable, sizes that do not fit its weights).

    Every malformed file raises this one error, at load, before anything is
    built from it; it is a ``ValueError``. Public as ``sknn.SafeFormatError``.
    """


def is_tagged(value, tag, *others):
    return isinstance(value, dict) and tag in value and set(value) == {tag, *others}


def refuse_constant(name):
    """``json.loads``' ``parse_constant``: NaN and Infinity are not JSON."""
    raise ValueError(f"non-standard JSON constant {name}")


def pickle_hint(path):
    """For a file that is no zip archive: a hint when it looks like a pickle."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head and head[0] == 0x80:
        return (" It looks like a pickle/joblib file: load it with "
                "joblib.load only if you trust its source")
    return ""


def short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------- archive
#: sknn.json is a few kilobytes (long lists of feature names or labels make
#: it larger); refuse to inflate one claiming more
MAX_JSON_BYTES = 8 * 2**20
#: and to parse one into more Python objects than about 40 MiB: lists and
#: dicts (about 100 bytes each), other values (commas, about 30 bytes each)
MAX_JSON_CONTAINERS = 100_000
MAX_JSON_VALUES = 1_000_000
#: deflate cannot expand more than 1032:1; a member claiming more is lying
_DEFLATE_RATIO = 1032
#: the safetensors header: per tensor about 100 bytes plus its name
_HEADER_BYTES_PER_TENSOR = 256
_HEADER_BYTES = 2**16
#: safetensors dtype names -> bytes per element (what numpy round-trips)
SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2,
                      "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                      "U64": 8, "F64": 8}
_NUMPY_TO_SAFETENSORS = {"b1": "BOOL", "u1": "U8", "i1": "I8", "i2": "I16",
                         "u2": "U16", "f2": "F16", "i4": "I32", "u4": "U32",
                         "f4": "F32", "i8": "I64", "u8": "U64", "f8": "F64"}


class ArchiveError(ValueError):
    """The archive's structure or declared sizes are not acceptable."""


def manifest(arrays):
    """The tensors' declaration saved in sknn.json: {key: [dtype, shape]}."""
    return {key: [_NUMPY_TO_SAFETENSORS[f"{a.dtype.kind}{a.dtype.itemsize}"],
                  list(a.shape)] for key, a in arrays.items()}


def _declared_bytes(declared):
    """Data bytes of a manifest, and its number of tensors; ArchiveError if
    malformed."""
    if not isinstance(declared, dict):
        raise ArchiveError("its tensor list is not a mapping")
    total = 0
    for key, entry in declared.items():
        if (not isinstance(entry, list) or len(entry) != 2
                or entry[0] not in SAFETENSORS_DTYPES
                or not isinstance(entry[1], list)
                or not all(type(n) is int and 0 <= n < 2**63 for n in entry[1])):
            raise ArchiveError(f"its tensor {short(key)} is declared as "
                               f"{short(entry)}")
        total += SAFETENSORS_DTYPES[entry[0]] * math.prod(entry[1])
    return total, len(declared)


def check_member(info, file_size, what):
    """Refuse a member before reading it: encryption, an unknown compression,
    or sizes that its bytes in the file cannot hold."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"its {what} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"its {what} uses compression method "
                           f"{info.compress_type}, not stored or deflate")
    if info.header_offset + info.compress_size > file_size:
        raise ArchiveError(f"its {what} claims {info.compress_size} bytes, more "
                           f"than the file holds")
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_RATIO
    if info.file_size > ratio * info.compress_size + 64:
        raise ArchiveError(f"its {what} claims to inflate to {info.file_size} "
                           f"bytes from {info.compress_size}")


def check_arrays_size(info, declared):
    """Bound the arrays member by the tensors sknn.json declares (None: an
    older file without the list, accepted only stored, as sknn wrote it)."""
    if declared is None:
        if info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError("its arrays are compressed but sknn.json does "
                               "not declare their tensors")
        return
    data, count = _declared_bytes(declared)
    header_cap = _HEADER_BYTES + count * _HEADER_BYTES_PER_TENSOR + sum(
        len(str(key)) for key in declared)
    if not data + 8 <= info.file_size <= data + 8 + header_cap:
        raise ArchiveError(
            f"its arrays member claims {info.file_size} bytes, but the tensors "
            f"sknn.json declares take {data}: it was changed or corrupted")


class JsonCounter:
    """Bound the objects json.loads would build, before it builds them,
    counted chunk by chunk while the member inflates (brackets and commas
    inside strings count too, which only makes the bound stricter)."""

    def __init__(self):
        self.containers = self.values = 0

    def __call__(self, chunk):
        self.containers += chunk.count(b"[") + chunk.count(b"{")
        self.values += chunk.count(b",")
        if (self.containers > MAX_JSON_CONTAINERS
                or self.values > MAX_JSON_VALUES):
            raise ArchiveError(
                f"its sknn.json holds more than {MAX_JSON_CONTAINERS} "
                f"lists/objects or {MAX_JSON_VALUES} values, more than a "
                "model's description")


def read_member(archive, info, what, check_chunk=None):
    """The member's bytes, read with a bound: never more than its declared
    size is inflated, and a shorter or longer stream is refused.
    ``check_chunk`` sees each inflated MiB (and may refuse it) before the
    next is inflated."""
    with archive.open(info) as f:
        if check_chunk is None:
            data = f.read(info.file_size + 1)
        else:
            parts, total = [], 0
            while chunk := f.read(min(2**20, info.file_size + 1 - total)):
                total += len(chunk)
                check_chunk(chunk)
                parts.append(chunk)
            data = b"".join(parts)
    if len(data) != info.file_size:
        raise ArchiveError(f"its {what} holds {len(data)} bytes, not the "
                           f"{info.file_size} its header declares")
    return data


def check_safetensors_header(data, declared):
    """The safetensors header (read from the bytes, before safetensors
    copies anything) against the tensors sknn.json declares."""
    if len(data) < 8:
        raise ArchiveError("its arrays member is too short")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise ArchiveError("its arrays header is longer than the member")
    try:
        header = json.loads(data[8:8 + length])
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"its arrays header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ArchiveError("its arrays header is not a mapping")
    header.pop("__metadata__", None)
    found = {}
    end = 0
    for key, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {
                "dtype", "shape", "data_offsets"}:
            raise ArchiveError(f"its arrays header entry {short(key)} is malformed")
        found[key] = [entry["dtype"], entry["shape"]]
        offsets = entry["data_offsets"]
        if isinstance(offsets, list) and len(offsets) == 2:
            end = max([end, *(o for o in offsets if type(o) is int)])
    data_bytes, _ = _declared_bytes(found)
    if data_bytes != len(data) - 8 - length or end != data_bytes:
        raise ArchiveError("its arrays header does not describe its data")
    if declared is not None and found != declared:
        raise ArchiveError("its arrays do not match the tensors recorded at "
                           "saving: it was changed or corrupted")


# ----------------------------------------------------------------- values
#: a string array in sknn.json may not claim more memory than this
MAX_STRING_ARRAY_BYTES = 64 * 2**20
DTYPE_RE = re.compile(r"^[<>|=]?U\d+$")
#: plain numpy dtypes (numbers, bools, strings, objects), e.g. an input dtype
DTYPE_NAME_RE = re.compile(r"^[<>|=]?([biufcSUO]\d*)$")


def numpy_dtype(text):
    if not isinstance(text, str) or not DTYPE_NAME_RE.match(text):
        raise SafeFormatError(f"bad dtype {short(text)}")
    return np.dtype(text)


def expect(value, kind, what):
    if not isinstance(value, kind):
        raise SafeFormatError(
            f"{what} should be a {kind.__name__}, got {short(value)}")
    return value


def strings(value):
    items = expect(value["__strings__"], list, "strings")
    if not all(isinstance(s, str) for s in items):
        raise SafeFormatError("a string array holds non-strings")
    dtype = value["dtype"]
    if dtype != "object" and not (isinstance(dtype, str) and DTYPE_RE.match(dtype)):
        raise SafeFormatError(f"bad string dtype {short(dtype)}")
    dtype = np.dtype(dtype)
    if len(items) * dtype.itemsize > MAX_STRING_ARRAY_BYTES:
        raise SafeFormatError(f"a string array claims {len(items)} x "
                              f"{dtype.itemsize} bytes")
    shape = tuple(expect(value["shape"], list, "a shape"))
    if not all(type(n) is int and n >= 0 for n in shape) or (
            math.prod(shape) != len(items)):
        raise SafeFormatError(f"a string array of {len(items)} items has shape "
                              f"{short(shape)}")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.astype(dtype).reshape(shape)


def validated(obj, name):
    """``obj`` after its class's own parameter validation (types, ranges,
    option names), as fit would run it."""
    validate = getattr(obj, "_validate_params", None)
    if validate is not None and hasattr(obj, "_parameter_constraints"):
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise SafeFormatError(
                f"{name}'s parameters are invalid ({str(exc).splitlines()[0]})"
            ) from None
    return obj


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def check_predicts(model):
    """A loaded model predicts one row of zeros, or the file is refused now
    rather than at the user's first predict."""
    from sklearn.pipeline import Pipeline

    first = model[0] if isinstance(model, Pipeline) else model
    for step in (model.steps if isinstance(model, Pipeline) else []):
        if step[1] is not None and step[1] != "passthrough":
            first = step[1]
            break
    n_features = getattr(first, "n_features_in_", None)
    if not isinstance(n_features, (int, np.integer)) or not 0 < n_features <= 2**24:
        raise ArchiveError(f"its first step's n_features_in_ is "
                           f"{short(n_features)}")
    X = np.zeros((1, int(n_features)))
    names = getattr(first, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        X = pd.DataFrame(X, columns=list(names))
    if not hasattr(model, "predict_proba"):  # a regressor: one row of outputs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = np.asarray(model.predict(X))
        if np.shape(prediction)[0] != 1:
            raise ArchiveError("its model does not predict one row for one row")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = model.predict_proba(X)
        label = model.predict(X)
    classes = model.classes_
    if np.shape(proba)[0] != 1 or np.shape(label)[0] != 1 or (
            np.ndim(classes) == 1 and np.shape(proba) != (1, len(classes))):
        raise ArchiveError("its model does not predict what its classes_ "
                           "describe")


# ----------------------------------------------------------------- network
def _same_int(a, b):
    ints = (int, np.integer)
    return (isinstance(a, ints) and isinstance(b, ints) and not isinstance(a, bool)
            and not isinstance(b, bool) and int(a) == int(b))


def check_target_encoding(estimator):
    """The target encoding agrees with itself and with the estimator's
    classes_, as fit leaves them (predict maps outputs to these labels)."""
    from sknn._targets import KINDS

    encoder = estimator.target_encoder_
    kind = getattr(encoder, "kind_", None)
    classes = getattr(encoder, "classes_", None)
    if not isinstance(kind, str) or kind not in KINDS:
        raise ArchiveError(f"its target encoding has kind {short(kind)}")
    if not isinstance(classes, np.ndarray) or classes.ndim != 1 or not len(classes):
        raise ArchiveError("its target encoding has no 1-D classes_")
    n_outputs = 1 if kind == "binary" else len(classes)
    if (kind == "binary" and len(classes) > 2) or not (
            _same_int(getattr(encoder, "n_outputs_", None), n_outputs)
            and getattr(encoder, "out_activation_", None) == KINDS[kind][0]
            and same(estimator.classes_, classes)):
        raise ArchiveError("its target encoding contradicts its classes_")
    for key in ("n_outputs_", "out_activation_"):
        mine, theirs = getattr(estimator, key, None), getattr(encoder, key)
        if key in vars(estimator) and not (same(mine, theirs)
                                           or _same_int(mine, theirs)):
            raise ArchiveError(f"its {key} contradicts its target encoding")


def check_architecture(estimator, state):
    """Compare the network the estimator's parameters describe with the
    file's weights, building it on the ``meta`` device (no memory) first,
    after sane bounds on the layer counts."""
    import torch

    n_tensors = len(state)
    for name in ("hidden_layer_sizes", "conv_filters", "dense_layer_sizes"):
        value = getattr(estimator, name, None)
        if isinstance(value, (list, tuple)) and len(value) > n_tensors:
            raise ArchiveError(
                f"its {name} declares {len(value)} layers for {n_tensors} "
                "weight tensors")
    elements = sum(t.numel() for t in state.values())
    n_features = estimator.n_features_in_
    if (not isinstance(n_features, (int, np.integer)) or isinstance(n_features, bool)
            or not 0 < n_features <= elements):
        raise ArchiveError(f"n_features_in_={short(n_features)} does not fit "
                           f"{elements} weights")
    if hasattr(estimator, "target_encoder_"):
        check_target_encoding(estimator)
        n_outputs = estimator.target_encoder_.n_outputs_
    else:  # a regressor: its outputs, and the activation its loss implies
        n_outputs = estimator.n_outputs_
        loss = getattr(estimator, "loss", None)
        expected = "exp" if loss == "poisson" else "identity"
        if estimator.out_activation_ != expected:
            raise ArchiveError(
                f"its out_activation_ {short(estimator.out_activation_)} "
                f"contradicts its loss {short(loss)}")
    if not _same_int(n_outputs, n_outputs) or not 0 < n_outputs <= elements:
        raise ArchiveError(f"the target encoding's {short(n_outputs)} outputs do "
                           f"not fit {elements} weights")
    estimator.device_ = "cpu"
    try:
        with torch.device("meta"):
            module = estimator._build_module(int(n_features), int(n_outputs))
    finally:
        del estimator.device_
    expected = {key: (tuple(t.shape), t.dtype)
                for key, t in module.state_dict().items()}
    found = {key: (tuple(t.shape), t.dtype) for key, t in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()), key=str)[:2]
        raise ArchiveError(
            "the weights do not fit the network its parameters describe "
            f"(e.g. {short(diff)})")
