"""CSV tables for the command line and users: whether a file has a header
row, and a table read as features and a target column. Public as
``sknn.datasets.csv_has_header`` and ``sknn.datasets.load_csv``."""

import os
from pathlib import Path

import numpy as np


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def csv_has_header(path):
    """Whether the first line of a CSV file is a header row.

    The first line is data, not names, when some of its fields are numbers,
    unless those numbers are the column positions 0, 1, 2, ... that pandas
    writes for unnamed columns (``DataFrame(X).to_csv(path, index=False)``).

    Parameters
    ----------
    path : str or path-like
        The CSV file.

    Returns
    -------
    has_header : bool

    Raises
    ------
    ValueError
        If the file cannot be read as text.
    """
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable CSV file: {exc}") from exc
    numbers = [i for i, field in enumerate(first) if _is_number(field.strip())]
    if not numbers:
        return True
    positions = [first[i].strip() for i in numbers]
    return positions == [str(i) for i in range(len(positions))]


def load_csv(path, target="label", *, header="infer"):
    """Read a CSV table: its feature columns and, optionally, its labels.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    target : str, int or None, default='label'
        The label column: a column name, or a position (0 the first column,
        -1 the last) when no column has that name, as in a file without a
        header. None reads every column as a feature (files to predict).
    header : {'infer', True, False}, default='infer'
        Whether the first line holds the column names. 'infer' decides with
        :func:`csv_has_header`. Without a header the columns are named by
        their position: '0', '1', ...

    Returns
    -------
    X : pandas.DataFrame
        The feature columns, with string column names (numbers, text or
        booleans as pandas reads them).
    y : ndarray of shape (n_samples,) or None
        The labels; None when ``target`` is None.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a readable CSV table, has no such label column
        (the message lists the columns), has rows without a label (the
        message gives their line numbers), or has no feature column.

    Examples
    --------
    >>> from sknn.datasets import load_csv
    >>> X, y = load_csv("iris.csv", target="species")  # doctest: +SKIP
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)!r}: no such CSV file")
    if header not in ("infer", True, False):
        raise ValueError(f"header must be 'infer', True or False; got {header!r}.")
    if header == "infer":
        header = csv_has_header(path)
    try:
        frame = pd.read_csv(path, header=0 if header else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable CSV file: {message}") from exc
    frame.columns = [str(c) for c in frame.columns]
    first_line = 2 if header else 1
    if len(frame) == 0:
        raise ValueError(f"{os.fspath(path)!r} holds no data rows.")
    if target is None:
        return frame, None
    column = _target_column(frame, target, path, header)
    y = frame[column]
    missing = np.flatnonzero(y.isna().to_numpy())
    if len(missing):
        lines = ", ".join(str(i + first_line) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(
            f"{os.fspath(path)!r}: the label column {column!r} is empty on line"
            f"{'s' if len(missing) > 1 else ''} {lines}{more}; fill in or remove "
            "those rows.")
    X = frame.drop(columns=[column])
    if X.shape[1] == 0:
        raise ValueError(f"{os.fspath(path)!r} has no feature columns besides the "
                         f"label column {column!r}.")
    return X, y.to_numpy()


def _target_column(frame, target, path, header):
    columns = list(frame.columns)
    if str(target) in columns:
        return str(target)
    position = None
    if isinstance(target, int) or (isinstance(target, str)
                                   and target.lstrip("-").isdigit()):
        position = int(target)
    if position is not None and -len(columns) <= position < len(columns):
        return columns[position]
    shown = ", ".join(repr(c) for c in columns[:12])
    more = ", ..." if len(columns) > 12 else ""
    where = ("has no header row, so its columns are numbered 0 to "
             f"{len(columns) - 1}" if not header else f"has the columns {shown}{more}")
    raise ValueError(
        f"{os.fspath(path)!r} has no label column {str(target)!r}; it {where}. "
        "Name the label column (or give its position, -1 for the last).")
