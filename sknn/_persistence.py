"""Writing files without half-written results, and without damaging the target.

Every file sknn writes (joblib models, ``.sknn`` files, ONNX graphs, CSV
predictions) goes through :func:`atomic_write`, which writes *through* to the
real target:

- a regular file (or a new name) is written as a temporary file in the
  target's folder, flushed to disk and renamed over the target
  (``os.replace`` is atomic on one file system), so an error or a kill leaves
  either the old file or the new one, never a mix. An existing file keeps its
  permission bits (a private 0600 file stays 0600) and, where the process may
  set it, its owner; a new file gets what ``open()`` would give it under the
  umask. On Linux the temporary file is created unnamed (``O_TMPFILE``) and
  given a name only once complete, just before the rename, so a ``kill -9``
  mid-write leaves no temporary file behind; elsewhere (or on file systems
  without ``O_TMPFILE``) it is a named ``.<name>.*.tmp`` file that an
  interrupted process may leave;
- a symlink is followed to its final target, which is replaced as above: the
  link stays a link;
- anything that is not a regular file (a device such as ``/dev/null``, a FIFO,
  ``/dev/stdout``, a socket) cannot be replaced atomically and must never be
  replaced by a regular file: it is refused with :class:`OutputPathError`
  (``special='refuse'``, the default, for models), or opened and written
  directly (``special='direct'``, for streams such as CSV predictions sent to
  ``/dev/stdout``);
- a directory, a folder that does not exist or is not writable, and an
  existing file without write permission are refused with
  :class:`OutputPathError` (a ``FileNotFoundError`` for a missing folder).

:func:`check_writable` makes the same checks without writing, for a command
line to call before a long training. Mapping a model fitted on a GPU to the
CPU on load is the estimators' own ``__setstate__``'s job.
"""

import os
import pickle
import secrets
import stat
import tempfile
import time
from pathlib import Path

_SPECIAL = ("refuse", "direct")


class OutputPathError(OSError, ValueError):
    """An output path sknn will not write: a directory, a device, a FIFO, a
    read-only file or folder, or a folder that does not exist."""


def _kind(mode):
    for test, name in [(stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")]:
        if test(mode):
            return name
    return "not a regular file"


def _target(path, special):
    """(real path, its os.stat_result or None, whether to write directly)."""
    if special not in _SPECIAL:
        raise ValueError(f"special must be one of {_SPECIAL}, got {special!r}.")
    path = Path(path)
    real = Path(os.path.realpath(path))
    shown = str(path) if real == path.absolute() else f"{path} (-> {real})"
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputPathError(f"Cannot write {shown}: {exc.strerror}.") from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputPathError(
            f"Cannot write {shown}: it is a directory. Give a file name in it, "
            f"e.g. {str(Path(path) / 'model.sknn')!r}.")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if special == "direct":
            return real, st, True
        raise OutputPathError(
            f"Cannot write {shown}: it is {_kind(st.st_mode)}, which sknn does "
            "not replace or write a model into. Give the path of a regular file.")
    folder = real.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot save to {str(path)!r}: the folder {str(folder)!r} does not "
            "exist. Create it first or choose another path.")
    if st is not None and not os.access(real, os.W_OK):
        raise OutputPathError(
            f"Cannot write {shown}: the file is read-only (mode "
            f"{stat.S_IMODE(st.st_mode):04o}). Change its permissions or choose "
            "another path.")
    return real, st, False


def check_writable(path, special="refuse"):
    """Check, without writing it, that :func:`atomic_write` can write ``path``.

    Cheap enough to call before a long training: it resolves symlinks, refuses
    a directory, a special file (unless ``special='direct'``), a read-only
    file and a missing folder, and creates (and at once deletes) an unnamed
    file in the target's folder, which catches read-only file systems and
    folders without write permission. A full disk is reported when the file
    system has no free block left.

    Parameters
    ----------
    path : str or path-like
        The file to be written.
    special : {'refuse', 'direct'}, default='refuse'
        What :func:`atomic_write` will be called with.

    Returns
    -------
    path : pathlib.Path
        The real target (symlinks resolved).

    Raises
    ------
    OutputPathError
        (an ``OSError`` and a ``ValueError``) with a one-line message saying
        what is wrong with the path.
    FileNotFoundError
        If the folder does not exist.
    """
    real, _, direct = _target(path, special)
    if direct:
        if not os.access(real, os.W_OK):
            raise OutputPathError(f"Cannot write {path}: permission denied.")
        return real
    try:
        with tempfile.TemporaryFile(dir=real.parent):
            pass
        free = os.statvfs(real.parent)
    except OSError as exc:
        raise OutputPathError(
            f"Cannot write {path}: its folder {str(real.parent)!r} is not "
            f"writable ({exc.strerror}).") from exc
    if free.f_bavail == 0 and free.f_blocks > 0:
        raise OutputPathError(
            f"Cannot write {path}: no space left on the file system of "
            f"{str(real.parent)!r}.")
    return real


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)  # not thread-safe; only where /proc is missing
    os.umask(umask)
    return umask


def _open_unnamed(folder):
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``), or None."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0),
                       0o666)
    except OSError:  # file system without O_TMPFILE support
        return None


def atomic_write(path, write, mode="wb", special="refuse"):
    """Write ``path`` through ``write(file)``, atomically and through to the
    real target (see the module's notes).

    Parameters
    ----------
    path : str or path-like
        Destination file. Its folder must exist. A symlink is followed: its
        final target is written and the link kept.
    write : callable
        Called with the open file.
    mode : {'wb', 'w'}, default='wb'
        Binary or text (text is written with ``newline=''``).
    special : {'refuse', 'direct'}, default='refuse'
        What to do when the target exists and is not a regular file (a device
        such as ``/dev/null``, a FIFO, ``/dev/stdout``): refuse, or open it and
        write directly (not atomic; a FIFO's open waits for a reader).

    Returns
    -------
    path : pathlib.Path
        The path written (as given).

    Raises
    ------
    OutputPathError
        If the target is a directory, a special file (``special='refuse'``)
        or read-only.
    FileNotFoundError
        If the destination folder does not exist.
    Exception
        Whatever ``write`` raised; the destination is then left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}.")
    text = {} if "b" in mode else {"newline": ""}
    real, st, direct = _target(path, special)
    if direct:
        with open(real, mode, **text) as f:
            write(f)
        return Path(path)
    folder = real.parent
    fd = _open_unnamed(folder)
    tmp_name = None
    if fd is None:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{real.name}.",
                                        suffix=".tmp")
    try:
        with os.fdopen(fd, mode, closefd=False, **text) as f:
            write(f)
            f.flush()
        if st is not None:
            _chmod(fd, tmp_name, stat.S_IMODE(st.st_mode))
            if hasattr(os, "fchown") and (st.st_uid, st.st_gid) != (
                    os.getuid(), os.getgid()):
                try:
                    os.fchown(fd, st.st_uid, st.st_gid)
                except OSError:  # only root (or the group's member) may
                    pass
        elif tmp_name is not None:
            # mkstemp creates the file private (0600); give it what a plain
            # open() would have given it under the umask (O_TMPFILE did)
            _chmod(fd, tmp_name, 0o666 & ~_umask())
        os.fsync(fd)
        if tmp_name is None:
            # name the complete file, then rename it over the target: only
            # a kill between these two calls can leave the temporary name
            tmp_name = _link_unnamed(fd, folder, real.name)
        os.close(fd)  # Windows renames no open file
        fd = None
        os.replace(tmp_name, real)
        tmp_name = None
        _fsync_folder(folder)
        _remove_stale_links(folder, real.name)
    finally:
        if fd is not None:
            os.close(fd)
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
    return Path(path)


def _chmod(fd, name, mode):
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before Python 3.13
        os.chmod(name, mode)


def _link_unnamed(fd, folder, name):
    """Give the unnamed file ``fd`` a fresh temporary name in ``folder``."""
    # with a dir_fd, os.link calls linkat(2), here with AT_SYMLINK_FOLLOW
    # (plain link(2) would link the /proc entry itself)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(100):
            candidate = f".{name}.sknn-{secrets.token_hex(4)}.tmp"
            try:
                os.link(f"/proc/self/fd/{fd}", candidate, dst_dir_fd=dir_fd,
                        follow_symlinks=True)
            except FileExistsError:
                continue
            return os.path.join(folder, candidate)
    finally:
        os.close(dir_fd)
    raise FileExistsError(f"No free temporary name in {str(folder)!r}.")


#: a linked temporary file is renamed microseconds after it gets its name;
#: one older than this was left by a process killed between the two calls
_STALE_LINK_SECONDS = 10


def _remove_stale_links(folder, name):
    """Remove what a writer killed between naming its complete file and the
    rename left (the only temporary file a kill can leave on Linux)."""
    prefix, now = f".{name}.sknn-", time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if (entry.name.startswith(prefix) and entry.name.endswith(".tmp")
                and len(entry.name) == len(prefix) + 12):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > (
                        _STALE_LINK_SECONDS):
                    os.unlink(entry.path)
            except OSError:
                pass


def _fsync_folder(folder):
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
    import joblib

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
    import joblib

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


__all__ = ["OutputPathError", "atomic_write", "check_writable", "dump", "load"]
