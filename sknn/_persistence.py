"""Saving and loading fitted models with joblib, without half-written files.

``dump`` writes to a temporary file in the destination's folder and renames it
over the destination only once the write has succeeded (``os.replace`` is
atomic on one file system), so a failed or interrupted save leaves neither a
partial file nor a damaged earlier model. Mapping a model fitted on a GPU to
the CPU on load is the estimators' own ``__setstate__``'s job.
"""

import os
import pickle
import tempfile
from pathlib import Path

import joblib


def atomic_write(path, write, mode="wb"):
    """Write ``path`` through ``write(file)`` on a temporary file beside it,
    flushed to disk, then renamed over ``path``: an error or an interruption
    leaves neither a partial file nor a damaged earlier one.

    Parameters
    ----------
    path : str or path-like
        Destination file. Its folder must exist.
    write : callable
        Called with the open temporary file.
    mode : {'wb', 'w'}, default='wb'
        Binary or text (text is written with ``newline=''``).

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    FileNotFoundError
        If the destination folder does not exist.
    Exception
        Whatever ``write`` raised; the destination is then left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot save to {str(path)!r}: the folder {str(folder)!r} does not "
            "exist. Create it first or choose another path."
        )
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); give it the permissions a
        # plain open() would have given it under the user's umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path


def dump(obj, path, compress=3):
    """Save ``obj`` to ``path`` with joblib, atomically (:func:`atomic_write`).

    Parameters
    ----------
    obj : object
        A fitted estimator or Pipeline (anything joblib can pickle).
    path : str or path-like
        Destination file. Its folder must exist.
    compress : int, default=3
        joblib's compression level (0 to 9).

    Returns
    -------
    path : pathlib.Path
        The path written.
    """
    return atomic_write(path, lambda f: joblib.dump(obj, f, compress=compress))


def load(path):
    """Load an object saved with :func:`dump` (or ``joblib.dump``).

    Parameters
    ----------
    path : str or path-like
        The saved file.

    Returns
    -------
    obj : object
        The loaded object.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a joblib/pickle file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"The model file {str(path)!r} does not exist. Pass the path that "
            "'sknn train --out' (or joblib.dump) wrote."
        )
    try:
        return joblib.load(path)
    except (pickle.UnpicklingError, EOFError, KeyError, IndexError,
            ValueError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a saved sknn model (joblib could not read it: "
            f"{type(exc).__name__}: {exc})."
        ) from exc
