"""Loaders for the data the Keras tutorials use: MNIST, folders of images and
CSV tables.

Nothing here downloads anything: each loader reads files that are already on
disk and says which file is missing or unreadable when it cannot. What a
loader returns is what the Pipelines ``sknn train`` saves take, so
``joblib.load(path).predict(X)`` works on it directly.
"""

import gzip
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from sknn._csv import csv_has_header, load_csv
from sknn._deps import require

__all__ = ["csv_has_header", "load_csv", "load_digits_or_mnist",
           "load_image_folder", "load_mnist"]

#: the environment variable :func:`load_digits_or_mnist` reads when no path is
#: given: Keras' ``mnist.npz`` or a folder of the MNIST IDX files
MNIST_ENV = "SKNN_MNIST"

#: the four MNIST IDX files, (train images, train labels, test images, test labels)
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: image file suffixes load_image_folder reads (compared case-insensitively)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------- MNIST
def load_mnist(path):
    """Load MNIST from Keras' ``mnist.npz`` or from a folder of IDX files.

    Parameters
    ----------
    path : str or path-like
        Either

        - the ``mnist.npz`` file that ``keras.datasets.mnist.load_data()``
          caches (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``), or
        - a folder holding the IDX files ``train-images-idx3-ubyte``,
          ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
          ``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz`` suffix).
          ``train-images.idx3-ubyte`` (a dot instead of the last hyphen) is
          accepted too. A folder with only the two ``t10k`` files is a
          test-only MNIST: see Returns.

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of ndarray
        ``X_*`` are uint8 arrays of shape (n_samples, 28, 28) and ``y_*`` uint8
        arrays of shape (n_samples,), as Keras returns them. When the folder
        has only the test files, ``X_train`` has shape (0, 28, 28) and
        ``y_train`` shape (0,): empty arrays with the right trailing shape and
        dtype, so ``(_, _), (X, y) = load_mnist(path)`` works on both layouts.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist, or the folder lacks a file it needs (the
        message lists the missing file names).
    ValueError
        If a file is not a valid ``mnist.npz`` or IDX file, or the images and
        labels disagree in number.

    Examples
    --------
    >>> from sknn.datasets import load_mnist
    >>> (X_train, y_train), (X_test, y_test) = load_mnist("mnist.npz")  # doctest: +SKIP
    >>> X_test.shape, X_test.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"load_mnist: {str(path)!r} does not exist. Pass Keras' mnist.npz or "
            "a folder with the MNIST IDX files (t10k-images-idx3-ubyte[.gz], ...)."
        )
    if path.is_dir():
        return _load_mnist_idx_folder(path)
    return _load_mnist_npz(path)


def load_digits_or_mnist(path=None, *, return_X_y=False):
    """MNIST when a copy is at hand, else scikit-learn's 8x8 digits.

    The gallery examples get their data here, so that each runs anywhere:
    with MNIST where you have it (Keras caches it as
    ``~/.keras/datasets/mnist.npz``), and with the digits that ship with
    scikit-learn otherwise. Nothing is downloaded.

    Parameters
    ----------
    path : str or path-like, default=None
        Keras' ``mnist.npz`` or a folder of the MNIST IDX files, as
        :func:`load_mnist` reads them. When None, the environment variable
        ``SKNN_MNIST`` is read instead; when that is unset or empty, the
        digits are loaded.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch, as scikit-learn's
        loaders do.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        - ``images``: ndarray of shape (n_samples, height, width), the raw
          pixel values (uint8 0-255 for MNIST, float 0-16 for the digits);
        - ``data``: the same images flattened, (n_samples, height * width);
        - ``target``: ndarray of shape (n_samples,), the digit of each image;
        - ``max_value``: the value of a white pixel, 255.0 or 16.0, the
          ``max_value`` a :class:`~sknn.preprocessing.PixelScaler` for them takes;
        - ``source``: 'MNIST (<path>)' or 'scikit-learn digits'.

        MNIST's training and test sets are concatenated (70,000 images, or
        the 10,000 test images of a test-only folder).
    (data, target) : tuple of ndarray
        When ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or ``SKNN_MNIST``) names a file or folder that does not
        exist: a path that was asked for is never replaced by the digits.

    Examples
    --------
    >>> from sknn.datasets import load_digits_or_mnist
    >>> digits = load_digits_or_mnist()  # SKNN_MNIST unset: the 8x8 digits
    >>> digits.images.shape, digits.max_value, digits.source
    ((1797, 8, 8), 16.0, 'scikit-learn digits')
    """
    from sklearn.utils import Bunch

    if path is None:
        path = os.environ.get(MNIST_ENV) or None
        origin = f"the {MNIST_ENV} environment variable"
    else:
        origin = "path"
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        bunch = Bunch(images=digits.images, data=digits.data,
                      target=digits.target, max_value=16.0,
                      source="scikit-learn digits")
    else:
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"load_digits_or_mnist: {os.fspath(path)!r} (from {origin}) does "
                "not exist. Give Keras' mnist.npz or a folder of the MNIST IDX "
                f"files, or unset {MNIST_ENV} to use scikit-learn's digits.")
        (X_train, y_train), (X_test, y_test) = load_mnist(path)
        images = np.concatenate([X_train, X_test])
        bunch = Bunch(images=images, data=images.reshape(len(images), -1),
                      target=np.concatenate([y_train, y_test]), max_value=255.0,
                      source=f"MNIST ({os.fspath(path)})")
    if return_X_y:
        return bunch.data, bunch.target
    return bunch


def _load_mnist_npz(path):
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"  # an .npz is a zip archive
    if not is_zip:
        raise ValueError(
            f"load_mnist: {str(path)!r} is not a readable .npz file (not a zip "
            "archive). Pass Keras' mnist.npz or a folder of MNIST IDX files."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in MNIST_FILES if key not in data.files]
            if missing:
                raise ValueError(
                    f"load_mnist: {str(path)!r} is an .npz file without the "
                    f"arrays {missing}; Keras' mnist.npz holds x_train, y_train, "
                    "x_test and y_test."
                )
            arrays = {key: np.asarray(data[key]) for key in MNIST_FILES}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"load_mnist: {str(path)!r} is not a readable .npz file ({exc}). "
            "Pass Keras' mnist.npz or a folder of MNIST IDX files."
        ) from exc
    for part in ("train", "test"):
        _check_pair(arrays[f"x_{part}"], arrays[f"y_{part}"], f"{path} ({part})")
    return ((arrays["x_train"], arrays["y_train"]),
            (arrays["x_test"], arrays["y_test"]))


def _find_idx_file(folder, name):
    """The path of IDX file ``name`` in ``folder`` (raw, .gz, '.idx' variant)."""
    dotted = name.replace("-idx", ".idx")
    for stem in (name, dotted):
        for suffix in ("", ".gz"):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _load_mnist_idx_folder(folder):
    found = {key: _find_idx_file(folder, name) for key, name in MNIST_FILES.items()}
    missing_test = [MNIST_FILES[k] for k in ("x_test", "y_test") if found[k] is None]
    n_train = sum(found[k] is not None for k in ("x_train", "y_train"))
    if missing_test or n_train == 1:
        missing = [MNIST_FILES[k] + "[.gz]" for k, p in found.items()
                   if p is None and (k.endswith("test") or n_train == 1)]
        raise FileNotFoundError(
            f"load_mnist: the folder {str(folder)!r} lacks {', '.join(missing)}. "
            "It needs the two t10k files (test set), and optionally both train "
            "files, raw or gzipped."
        )
    X_test = read_idx(found["x_test"])
    y_test = read_idx(found["y_test"])
    _check_pair(X_test, y_test, f"{found['x_test']} / {found['y_test']}")
    if n_train == 2:
        X_train = read_idx(found["x_train"])
        y_train = read_idx(found["y_train"])
        _check_pair(X_train, y_train, f"{found['x_train']} / {found['y_train']}")
    else:
        X_train = np.empty((0,) + X_test.shape[1:], dtype=X_test.dtype)
        y_train = np.empty((0,), dtype=y_test.dtype)
    return (X_train, y_train), (X_test, y_test)


def _check_pair(X, y, where):
    if X.ndim != 3 or y.ndim != 1:
        raise ValueError(
            f"load_mnist: expected images of shape (n, rows, cols) and labels of "
            f"shape (n,) in {where}; got {X.shape} and {y.shape}."
        )
    if len(X) != len(y):
        raise ValueError(
            f"load_mnist: {where} has {len(X)} images but {len(y)} labels; the "
            "files do not belong together."
        )


def read_idx(path):
    """Read one IDX file (raw or gzipped) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        An IDX file as distributed with MNIST; a ``.gz`` suffix means gzip.

    Returns
    -------
    array : ndarray
        The array with the shape and dtype stored in the file header (uint8
        for the MNIST files).

    Raises
    ------
    ValueError
        If the file is not an IDX file or is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} cannot be read as an IDX file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: its header does not start with "
            "the IDX magic number (0x00 0x00 <type> <ndim>)."
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is a truncated IDX file (short header).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big")
                  for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{str(path)!r} is a truncated or corrupt IDX file: the header "
            f"announces shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(raw) - header}."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def is_mnist_folder(path):
    """Whether ``path`` is a folder holding the MNIST test IDX files."""
    path = Path(path)
    return path.is_dir() and any(
        _find_idx_file(path, name) is not None for name in MNIST_FILES.values())


# -------------------------------------------------------------- image folder
def _require_pillow():
    return require("PIL.Image", "Reading images", extra="images")


def image_files(root):
    """The ``(path, class name)`` pairs under ``root/<class>/``, sorted.

    Parameters
    ----------
    root : str or path-like
        A folder with one sub-folder per class.

    Returns
    -------
    files : list of (pathlib.Path, str)
        Image files (suffix in ``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, any
        case), sorted by class name and then by file name.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"load_image_folder: {str(root)!r} is not a folder. Expected "
            "root/<class>/*.png|jpg|jpeg|bmp."
        )
    files = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS:
                files.append((file, class_dir.name))
    return files


def load_image(path, size=(32, 32), grayscale=False):
    """Read one image file as a float32 array in [0, 1].

    Parameters
    ----------
    path : str or path-like
        The image file.
    size : tuple of int (height, width), default=(32, 32)
        The image is resized to this size (bilinear).
    grayscale : bool, default=False
        Convert to one channel ('L') instead of three ('RGB').

    Returns
    -------
    image : ndarray of shape (height, width, channels), dtype float32

    Raises
    ------
    ValueError
        If Pillow cannot read the file; the message names it.
    """
    Image = _require_pillow()
    height, width = size
    try:
        with Image.open(path) as img:
            img = img.convert("L" if grayscale else "RGB")
            img = img.resize((width, height), Image.BILINEAR)
            array = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"Cannot read the image file {str(path)!r}: {exc}. Remove or replace "
            "it, or pass on_error='warn' to skip unreadable files."
        ) from exc
    if grayscale:
        array = array[:, :, None]
    return array


def load_image_folder(root, size=(32, 32), flatten=False, *, grayscale=False,
                      on_error="raise"):
    """Load a folder of class sub-folders of images, Keras ``flow_from_directory``
    style.

    Parameters
    ----------
    root : str or path-like
        A folder laid out as ``root/<class name>/<image file>``; files with the
        suffixes ``.png``, ``.jpg``, ``.jpeg`` and ``.bmp`` (any case) are read,
        other files are ignored.
    size : tuple of int (height, width), default=(32, 32)
        Every image is resized to this size.
    flatten : bool, default=False
        Return ``X`` as 2-D ``(n_samples, height * width * channels)`` rows
        (what :class:`~sknn.MLPClassifierTorch` and a scaler take) instead of
        4-D images.
    grayscale : bool, default=False
        Read images as one channel instead of RGB.
    on_error : {'raise', 'warn'}, default='raise'
        What to do with a file Pillow cannot read: raise a ValueError naming
        it, or skip it with a ``UserWarning`` naming it.

    Returns
    -------
    X : ndarray of shape (n_samples, height, width, channels), dtype float32
        Pixel values in [0, 1], channels-last (3 channels, or 1 with
        ``grayscale=True``); 2-D when ``flatten=True``.
    y : ndarray of shape (n_samples,)
        The class (sub-folder) name of each image, as strings.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If no image files are found, or a file cannot be read and
        ``on_error='raise'``.

    Notes
    -----
    The order is deterministic: classes sorted by name, then files sorted by
    name within each class.

    Examples
    --------
    >>> from sknn.datasets import load_image_folder
    >>> X, y = load_image_folder("shapes/", size=(32, 32))  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (300, 32, 32, 3)
    """
    if on_error not in ("raise", "warn"):
        raise ValueError(
            f"on_error must be 'raise' or 'warn'; got {on_error!r}.")
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(
            f"size must be a (height, width) pair of positive ints; got {size}.")
    files = image_files(root)
    if not files:
        raise ValueError(
            f"load_image_folder: no image files found under {os.fspath(root)!r}. "
            "Expected root/<class>/*.png|jpg|jpeg|bmp (one sub-folder per class)."
        )
    images, labels = [], []
    for file, label in files:
        try:
            images.append(load_image(file, size=size, grayscale=grayscale))
        except ValueError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"Skipping unreadable image file {str(file)!r}: "
                          f"{exc.__cause__}", UserWarning, stacklevel=2)
            continue
        labels.append(label)
    if not images:
        raise ValueError(
            f"load_image_folder: none of the {len(files)} image files under "
            f"{os.fspath(root)!r} could be read."
        )
    X = np.stack(images).astype(np.float32, copy=False)
    if flatten:
        X = X.reshape(len(X), -1)
    return X, np.asarray(labels, dtype=str)


# ------------------------------------------------------------------------ CSV
