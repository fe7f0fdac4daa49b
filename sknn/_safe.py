"""A model file that loading cannot turn into code execution.

:func:`save` writes a fitted sknn estimator, a Pipeline of known
transformers ending in one, or a TransformedTargetRegressor around an sknn
regressor, as a zip archive of two members:

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

:mod:`sknn._safe_document` maps a model to ``sknn.json`` and back (and tags
the values JSON has no type for), :mod:`sknn._safe_classes` lists the classes
and what each parameter may hold, and :mod:`sknn._safe_checks` the bounds of
the archive and of the network. ``"arrays"`` in ``sknn.json`` lists each
tensor's dtype and shape: the arrays member is bounded by it before it is
read.
"""

import hashlib
import json
import os
import zipfile
from pathlib import Path

from sknn import _safe_checks as checks
from sknn._deps import require
from sknn._persistence import atomic_write
from sknn._safe_checks import SafeFormatError
from sknn._safe_classes import SAFE_CLASSES, ParameterRefused
from sknn._safe_document import Reader, Writer

FORMAT = "sknn-safe"
FORMAT_VERSION = 1
JSON_MEMBER = "sknn.json"
ARRAYS_MEMBER = "arrays.safetensors"
_DIGEST_PREFIX = b"sknn-json-sha256:"


# --------------------------------------------------------------------- save
def save(model, path):
    """Save a fitted model in sknn's safe format: JSON and safetensors, no pickle.

    Parameters
    ----------
    model : sknn estimator, Pipeline or TransformedTargetRegressor
        A fitted MLPClassifierTorch, CNNClassifier or MLPRegressorTorch, or
        a fitted Pipeline of the transformers in ``sknn._safe.SAFE_CLASSES``
        (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler,
        Normalizer, PCA, ``sknn.preprocessing.PixelScaler``, a
        FunctionTransformer of the functions below) ending in one. A
        ``sklearn.compose.TransformedTargetRegressor`` may be the model or
        the Pipeline's last step: its ``regressor`` an MLPRegressorTorch or
        a Pipeline of those transformers ending in one, its ``transformer``
        None or one of them, its ``func`` and ``inverse_func`` None or one
        of numpy's ``log``, ``exp``, ``log1p``, ``expm1``, ``sqrt``,
        ``square`` (saved by name: a file names no other code).
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
        If a step is of a class the format does not know, or sits where the
        format does not nest it (a Pipeline in a Pipeline, a
        TransformedTargetRegressor around a classifier...).
    ValueError
        If the model is not fitted, or has a parameter that reaches outside
        the model: ``callbacks`` (skorch callback objects are code, and
        several write files) or a Pipeline's ``memory`` (a cache folder whose
        pickles fit() would load); set them to None first, predictions do not
        depend on them. Or a ``func``/``inverse_func`` outside the table
        above (a lambda, say): use ``transformer=StandardScaler()`` instead.
        (``sknn._safe_classes.PARAMETERS`` lists every parameter of every
        class the format holds, allowed or refused, and why.)
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
    writer = Writer()
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
    model : sknn estimator, Pipeline or TransformedTargetRegressor
        The fitted model, on the CPU. ``predict`` and ``predict_proba`` give
        what the saved model gave; ``partial_fit`` and ``fit`` with ``warm_start=True``
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
        format's list or nests one where the format does not, names a
        function outside its table, sets a parameter that reaches outside
        the model (a Pipeline's ``memory``, ``callbacks``) or state rebuilt
        from the weights (``net_``, ``device_``...), declares members or
        tensors larger than the file can hold, or an architecture that does
        not fit its weights. These are checked before anything large is allocated, and
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
    except (checks.ArchiveError, ParameterRefused) as exc:
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
    reader = Reader(arrays)
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


__all__ = ["FORMAT", "SAFE_CLASSES", "SafeFormatError", "load", "save"]
