"""Reading and writing the model files of the ``sknn`` command.

The file's suffix chooses the format: ``.sknn`` (:func:`sknn.save`, no
pickle), ``.onnx`` (onnxruntime, for ``sknn predict``), anything else a
joblib pickle. :func:`load_model` is the one place the command reads a model.
"""

from pathlib import Path

from sknn.cli.errors import InputError, one_line

#: model file suffixes: joblib pickles; the pickle-free format and ONNX (read
#: through sknn.load and onnxruntime where this sknn has them)
MODEL_SUFFIXES = (".joblib", ".sknn", ".onnx")

#: the first bytes of files that are surely not joblib models, and what they are
_SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
               b"GIF8": "a GIF image", b"BM": "a BMP image", b"%PDF": "a PDF file",
               b"PK\x03\x04": "a zip archive (a .sknn model? name it .sknn)",
               b"\x93NUMPY": "a numpy .npy array"}


def model_format(path):
    """The model format a path's suffix names: '.sknn', '.onnx' or '.joblib'."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in MODEL_SUFFIXES else ".joblib"


def load_model(path):
    """Load a saved model; the file's suffix chooses the reader.

    ``.sknn`` through :func:`sknn.load` (JSON and safetensors, no pickle),
    ``.onnx`` through onnxruntime, anything else (``.joblib``) through joblib.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model : object
        A fitted Pipeline or estimator, a classifier (with ``predict_proba``
        and ``classes_``) or a regressor, or for ``.onnx`` an
        :class:`sknn._onnx_runtime.OnnxModel`.

    Raises
    ------
    InputError, FileNotFoundError, ValueError, ImportError
        If the file cannot be read as a model of its format (one line each).
    """
    fmt = model_format(path)
    if not Path(path).is_file():
        what = "is a folder" if Path(path).is_dir() else "does not exist"
        raise FileNotFoundError(
            f"The model file {str(path)!r} {what}. Pass the file 'sknn train "
            "--out' or 'sknn export' wrote.")
    if fmt == ".onnx":
        from sknn._onnx_runtime import OnnxModel

        return OnnxModel(path)
    if fmt == ".sknn":
        import sknn

        model = sknn.load(path)
    else:
        model = _load_joblib(path)
    if not is_regressor_model(model) and not (
            hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise InputError(f"{str(path)!r} does not hold a fitted classifier or "
                         "regressor")
    return model


def is_regressor_model(model):
    """Whether a loaded model predicts numbers (a regressor, or a Pipeline or
    ONNX graph of one) rather than labels."""
    from sknn._onnx_runtime import OnnxModel

    if isinstance(model, OnnxModel):
        return model.task_ == "regression"
    from sklearn.base import is_regressor

    try:
        return bool(is_regressor(model))
    except Exception:  # noqa: BLE001 - an object without scikit-learn tags
        return False


def _load_joblib(path):
    from sknn._persistence import load

    what = _not_a_model(path)
    if what:
        raise InputError(f"{str(path)!r} is not a saved sknn model: it is {what}. "
                         "Pass the .joblib, .sknn or .onnx file 'sknn train' or "
                         "'sknn export' wrote")
    try:
        return load(path)
    except (ModuleNotFoundError, AttributeError) as exc:
        # a pickle names classes and modules of the versions that wrote it
        raise InputError(
            f"{str(path)!r} was saved by another version of sknn or of its "
            f"dependencies ({one_line(exc)}); retrain it, or load it with "
            "that version and save it with sknn.save") from exc
    except (OSError, MemoryError, RecursionError) as exc:
        raise InputError(f"Cannot read the model file {str(path)!r}: "
                         f"{one_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - whatever unpickling raised
        raise InputError(
            f"{str(path)!r} is not a saved sknn model (it cannot be unpickled: "
            f"{type(exc).__name__}); pass the .joblib file 'sknn train' wrote, "
            "or a .sknn or .onnx file") from exc


def _not_a_model(path):
    """What a file surely not a joblib pickle is ('text (a CSV file?)', 'a
    PNG image', ...), or None for a file that may be one."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty"
    for signature, what in _SIGNATURES.items():
        if head.startswith(signature):
            return what
    # joblib writes pickles of protocol >= 2 (b'\x80') or compressed streams
    # (zlib b'x', gzip, bz2, xz, lzma, lz4): all start with a byte that plain
    # text never starts with, except zlib's 'x'
    if head[:1] != b"x" and _is_text(head):
        return "a text file" + (" (a CSV file?)" if b"," in head else "")
    return None


def _is_text(head):
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not a character cut at the end
            return False
        text = head[:exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def save_model(model, path):
    """Save a fitted model atomically; the suffix of ``path`` chooses the
    format: ``.sknn`` through :func:`sknn.save`, anything else joblib."""
    if model_format(path) == ".sknn":
        import sknn

        return sknn.save(model, path)
    from sknn._persistence import dump

    return dump(model, path)


def check_out_path(path, option="--out", formats=(".joblib", ".sknn")):
    """Fail before the work, not after, on a path the model cannot go to."""
    path = Path(path)
    fmt = model_format(path)
    if fmt not in formats:
        raise InputError(
            f"{option} {str(path)!r}: this command writes "
            f"{' or '.join(formats)} files"
            + ("; make an ONNX file with 'sknn export --onnx'"
               if fmt == ".onnx" else ""))
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {str(path)!r}: the folder {str(folder)!r} "
                         "does not exist")
    if path.is_dir():
        raise InputError(f"{option} {str(path)!r} is a folder; give a file name")

