"""The training data ``sknn train`` reads: digits, MNIST, image folders, CSV."""

from pathlib import Path

from sknn.cli.errors import InputError

#: suffixes read as CSV files (by sknn train --data and sknn predict)
CSV_SUFFIXES = (".csv", ".tsv", ".txt")

#: a text column with more distinct values than this (and than half its rows)
#: is an identifier or free text, not a category to one-hot encode
MAX_CATEGORIES = 50


class TrainingData:
    """What ``sknn train`` read: X as :mod:`sknn.datasets` returns it, y, and
    how to build the first steps of the Pipeline for it."""

    def __init__(self, X, y, source, max_value=None, notes=(), target="label"):
        self.X = X
        self.y = y
        self.source = source
        self.max_value = max_value  # images only: a white pixel's value
        self.notes = list(notes)
        self.target = target  # the name of a CSV's target column

    @property
    def is_image(self):
        return self.max_value is not None

    def describe(self):
        if self.is_image:
            shape = self.X.shape[1:]
            mode = "grayscale" if len(shape) == 2 or shape[-1] == 1 else "colour"
            return f"{len(self.X)} {shape[0]}x{shape[1]} {mode} images"
        return f"{len(self.X)} rows, {self.X.shape[1]} feature columns"


def _digits_or_mnist(path=None):
    """scikit-learn's digits, or MNIST (training and test images together)."""
    from sknn.datasets import load_digits_or_mnist

    data = load_digits_or_mnist(path)
    return TrainingData(data.images, data.target, data.source,
                        max_value=data.max_value)


def _image_folder(path, size, grayscale):
    from sknn.datasets import load_image_folder

    if len(size) != 2:
        raise InputError(f"--image-size takes two numbers H,W; got {size}")
    X, y = load_image_folder(path, size=size, grayscale=grayscale)
    return TrainingData(X, y, f"image folder {path}", max_value=1.0)


def feature_kinds(X, path):
    """(numeric columns, text columns) of a feature DataFrame; an error for
    missing values and for text columns too varied to one-hot encode."""
    import pandas as pd

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in numeric]
    gaps = [c for c in numeric if X[c].isna().any()]
    if gaps:
        raise InputError(
            f"{str(path)!r}: missing values in the numeric columns {gaps[:10]}; "
            "fill them in or drop those rows or columns")
    varied = [c for c in text
              if X[c].nunique() > max(MAX_CATEGORIES, len(X) // 2)
              or (X[c].nunique() > 10 and X[c].nunique() == len(X))]
    if varied:
        raise InputError(
            f"{str(path)!r}: the text columns {varied[:10]} have a different value "
            "in (almost) every row, like identifiers or free text, which one-hot "
            "encoding cannot use; drop them")
    return numeric, text


def _csv(path, target, header):
    from sknn.datasets import csv_has_header, load_csv

    notes = []
    if header == "infer" and not csv_has_header(path):
        notes.append("no header row detected (the first line holds numbers); "
                     "columns are numbered from 0 (pass --header if the first "
                     "line holds names)")
    X, y = load_csv(path, target=target, header=header)
    _, text = feature_kinds(X, path)
    if text:
        counts = ", ".join(f"{c!r} ({X[c].nunique()} values)" for c in text[:10])
        notes.append(f"one-hot encoding the text columns {counts}")
    return TrainingData(X, y, f"CSV {path}", notes=notes,
                        target=_target_name(path, target, header))


def _target_name(path, target, header):
    """The name of the target column ``--target`` picked (a name, or a
    position such as -1), from the CSV's first line alone."""
    import pandas as pd

    from sknn._csv import _target_column
    from sknn.datasets import csv_has_header

    if header == "infer":
        header = csv_has_header(path)
    columns = pd.read_csv(path, header=0 if header else None, nrows=0).columns
    frame = pd.DataFrame(columns=[str(c) for c in columns])
    return _target_column(frame, target, path, header)


def load_data(args):
    """The :class:`TrainingData` for ``sknn train``'s arguments.

    Without ``--data``: :func:`sknn.datasets.load_digits_or_mnist`, that is
    scikit-learn's 8x8 digits, or MNIST where the ``SKNN_MNIST`` environment
    variable names a copy.
    """
    from sknn.datasets import is_mnist_folder

    if args.data is None:
        return _digits_or_mnist()
    path = Path(args.data)
    if not path.exists():
        raise InputError(f"--data {args.data!r}: no such file or folder")
    if path.is_dir():
        if is_mnist_folder(path):
            return _digits_or_mnist(path)
        return _image_folder(path, args.image_size, args.grayscale)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _digits_or_mnist(path)
    if suffix in CSV_SUFFIXES or suffix == "":
        return _csv(path, args.target, args.header)
    raise InputError(
        f"--data {args.data!r}: unsupported format {suffix!r}. Expected an "
        "mnist.npz, an MNIST IDX folder, an image folder or a .csv file.")
