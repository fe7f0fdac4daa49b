"""Opt-in glibc malloc tuning for CPU training of convolutional nets.

With glibc's default settings, the large activation buffers a CNN frees after
each batch go back to the operating system (``munmap``, or a trim of the heap
top), and the next batch faults every page of them in again: on a 2-core machine
a CPU training process of the MNIST CNN took up to 760,000 minor page faults
and 1.4 s of kernel time per epoch. Raising the mmap threshold (buffers below it
come from the heap and are reused) and the trim threshold (free memory at the
heap top is kept) removes those faults.

This is process-wide state of the C allocator, so sknn never changes it on its
own: call :func:`tune_malloc` once at the start of a training script, or scope
it with :func:`tuned_malloc`. Without any code, the same settings can be given
to glibc when the process starts::

    export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432
    export GLIBC_TUNABLES=$GLIBC_TUNABLES:glibc.malloc.trim_threshold=1073741824
    python train.py

The cost is memory: up to ``trim_threshold`` of freed memory stays in the
process instead of going back to the system. On systems whose C library is not
glibc (macOS, Windows, musl), these functions do nothing and return False.
See ``docs/benchmarks_cnn.md`` for measurements.
"""

import ctypes
import ctypes.util
from contextlib import contextmanager

#: mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: glibc's initial values of both (the mmap threshold then adapts upwards)
GLIBC_DEFAULT_THRESHOLD = 128 * 1024

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


def _libc():
    """The glibc handle, or None when the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None
    return libc


def tune_malloc(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD):
    """Keep freed training buffers in the process (glibc only, process-wide).

    Parameters
    ----------
    mmap_threshold : int, default=32 MiB
        Allocations from this size on are served by ``mmap`` and returned to
        the system when freed; smaller ones come from the reusable heap.
        glibc caps it at 32 MiB on 64-bit systems.
    trim_threshold : int, default=1 GiB
        Free memory at the top of the heap beyond this size is returned to the
        system.

    Returns
    -------
    bool
        True when glibc accepted both settings; False elsewhere (nothing done).
    """
    libc = _libc()
    if libc is None:
        return False
    ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
    ok_trim = libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
    return bool(ok_mmap) and bool(ok_trim)


@contextmanager
def tuned_malloc(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD):
    """:func:`tune_malloc` for the duration of a ``with`` block.

    On exit both thresholds are set back to glibc's initial 128 KiB and the
    heap is trimmed (``malloc_trim(0)``), so the retained memory goes back to
    the system. glibc's upward adaptation of the mmap threshold stays off
    afterwards (any explicit setting ends it), which only matters for
    programs that rely on it.

    Parameters
    ----------
    mmap_threshold : int, default=32 MiB
        As in :func:`tune_malloc`.
    trim_threshold : int, default=1 GiB
        As in :func:`tune_malloc`.

    Yields
    ------
    applied : bool
        Whether the settings were applied (False when the C library is not
        glibc).

    Examples
    --------
    >>> from sknn import CNNClassifier
    >>> from sknn.malloc import tuned_malloc
    >>> with tuned_malloc():  # doctest: +SKIP
    ...     CNNClassifier().fit(X_images, y)
    """
    applied = tune_malloc(mmap_threshold, trim_threshold)
    try:
        yield applied
    finally:
        if applied:
            libc = _libc()
            libc.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
            libc.malloc_trim(0)


__all__ = ["tune_malloc", "tuned_malloc"]
