"""Where a fit runs: in which worker, and on which torch device.

A fit may run in the caller's process, in a joblib worker (a loky process or a
thread, e.g. under ``GridSearchCV(n_jobs=k)``) or in a dask.distributed worker
(``joblib.parallel_backend("dask")``). Nothing here schedules anything: joblib
and dask decide where a fit runs, and this module only makes each fit a good
neighbour there.

- Workers: :func:`worker_index` tells parallel workers apart; the thread
  budget of a fit in a worker is ``sknn._threads``' business (loky exports
  ``OMP_NUM_THREADS=cores // n_jobs`` to its workers unless the parent set it;
  the dask nanny exports ``OMP_NUM_THREADS=1``: :func:`env_thread_limit`).
- GPUs: ``device='auto'`` in parallel workers with several visible GPUs spreads
  the fits round-robin over them by worker index, and the CUDA cache is
  released when a fit ends.
"""

import itertools
import os
import re
import sys
import tempfile
import threading
import zlib

import joblib
import torch
from joblib.parallel import get_active_backend

#: the environment variables through which joblib (loky) and the dask nanny
#: limit the threads of a worker process, in the order they are read
THREAD_LIMIT_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: a small per-thread index for threads that run fits, for GPU round-robin
_thread_slots = itertools.count()
_thread_state = threading.local()


def _cuda_available():
    return torch.cuda.is_available()


def _cuda_device_count():
    return torch.cuda.device_count()


def cpu_count():
    # joblib's count honours CPU affinity and cgroup (container) quotas
    return joblib.cpu_count()


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


# --------------------------------------------------------------- where are we
def dask_worker():
    """The dask.distributed worker running this code, or None.

    ``distributed`` is only consulted when something already imported it: a
    dask worker process always has, and sknn never imports dask itself.
    """
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def dask_threads(worker):
    """Task threads of a dask worker (``Worker.state.nthreads``; older
    distributed releases keep it on the worker itself)."""
    state = getattr(worker, "state", worker)
    return max(int(getattr(state, "nthreads", None) or 1), 1)


def in_joblib_worker():
    """Whether this code runs as a task of a joblib ``Parallel`` call.

    joblib runs each batch of tasks under the backend's *nested* backend,
    whose ``nesting_level`` is at least 1, both in loky worker processes and
    in threads of the threading backend; at top level it is 0.
    """
    backend, _ = get_active_backend()
    return (getattr(backend, "nesting_level", 0) or 0) >= 1


def env_thread_limit():
    """The thread limit joblib/loky or the dask nanny exported to this worker
    process (``OMP_NUM_THREADS``), or None."""
    for var in THREAD_LIMIT_VARS:
        value = os.environ.get(var, "")
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    return None


def _process_index():
    """This worker process's index among its siblings: the number in
    multiprocessing's process name ('LokyProcess-3', 'ForkPoolWorker-2'), or
    the dask worker's name; 0 in the main process."""
    dask = dask_worker()
    if dask is not None:
        name = dask.name
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            return int(name)
        # a named worker of a real cluster: a stable number from its name
        return zlib.crc32(str(name).encode())
    import multiprocessing

    name = multiprocessing.current_process().name
    if name == "MainProcess":
        return 0
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) - 1 if match else os.getpid()


def _thread_index():
    """0 in the main thread; else a small number fixed per thread, given in the
    order threads first ask for one (joblib's and dask's pool threads live
    for many tasks)."""
    if threading.current_thread() is threading.main_thread():
        return 0
    slot = getattr(_thread_state, "slot", None)
    if slot is None:
        slot = _thread_state.slot = next(_thread_slots)
    return slot


def worker_index():
    """A number that differs between the parallel workers running sknn fits.

    Consecutive loky processes, dask workers named 0, 1, ... and joblib's
    threads get consecutive numbers, so ``worker_index() % n`` spreads them
    round-robin over n devices.

    Returns
    -------
    index : int or None
        None when this code does not run in a joblib or dask worker.
    """
    dask = dask_worker()
    if dask is None and not in_joblib_worker():
        return None
    threads = dask_threads(dask) if dask is not None else 1
    return _process_index() * threads + _thread_index()


# --------------------------------------------------------------------- device
def resolve_device(device):
    """The concrete torch device string for the ``device`` parameter.

    'auto' becomes 'cuda' when ``torch.cuda.is_available()`` and 'cpu'
    otherwise. In a parallel worker (joblib or dask) with several visible GPUs,
    'auto' becomes 'cuda:i' with i = worker index modulo the number of GPUs, so
    concurrent fits spread over the GPUs instead of piling onto cuda:0.
    An explicit accelerator that is not present is a ValueError that names the
    way out, not a CUDA stack trace in the middle of training.

    Parameters
    ----------
    device : str
        'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.

    Returns
    -------
    device : str
        The device the fit runs on.
    """
    if device == "auto":
        if not _cuda_available():
            return "cpu"
        n_gpus = _cuda_device_count()
        index = worker_index() if n_gpus > 1 else None
        return "cuda" if index is None else f"cuda:{index % n_gpus}"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device. Use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if kind == "cuda" and not _cuda_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine (torch.cuda.is_available() is False). Use device='auto' to "
            "fall back to the CPU, or device='cpu'."
        )
    if kind == "cuda":
        index = torch.device(device).index
        if index is not None and index >= _cuda_device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{_cuda_device_count()} CUDA device(s) are visible."
            )
    if kind == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but the MPS backend is not "
            "available. Use device='auto' or device='cpu'."
        )
    return str(device)


def map_location(device):
    """The device a pickled model should load onto here: the one it was fitted
    on when that exists on this machine, else the CPU."""
    if device is None:
        return "cpu"
    kind = torch.device(device).type
    if kind == "cuda" and not _cuda_available():
        return "cpu"
    if kind == "cuda":
        index = torch.device(device).index
        if index is not None and index >= _cuda_device_count():
            # fitted on cuda:3 of a 4-GPU worker, loaded where fewer are visible
            return "cuda"
    if kind == "mps" and not _mps_available():
        return "cpu"
    return device


def release_device_memory():
    """Give the CUDA caching allocator's unused blocks back to the driver.

    Only when this process has initialised CUDA, so a CPU fit never touches
    (or initialises) it. Other processes sharing the GPU then see the memory.
    """
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def isolate_checkpoints(callbacks):
    """A private checkpoint folder for each fit that runs in a parallel worker.

    skorch's ``Checkpoint`` and ``TrainEndCheckpoint`` write ``params.pt``,
    ``optimizer.pt``... into ``dirname`` (default ``''``: the current
    directory). Fits that run at the same time (``GridSearchCV(n_jobs=k)``,
    dask) would write, and with ``load_best=True`` read back, the same files:
    one fit then loads another's half-written weights. In a joblib or dask
    worker, each such callback therefore gets a fresh folder of its own,
    ``<dirname>/sknn-fit-*`` (``<tmp>/sknn-fit-*`` when ``dirname`` is empty),
    whatever ``dirname`` the user gave; it stays after the fit (the fitted
    net's callback names it) for the user to load from. Files already in
    ``dirname`` that the checkpoint names (what a ``LoadInitState`` resumes
    from) are copied into it first, so each fit resumes from them without
    sharing them. A checkpoint whose file names cannot be made private (an
    absolute path, or a file object, in ``f_params``, ``f_optimizer``...)
    is refused with a ValueError. In the caller's process (fits one after
    another) nothing changes.

    Parameters
    ----------
    callbacks : list
        The fit's own copies of the user's callbacks (items may be
        ``(name, callback)`` pairs); changed in place.

    Returns
    -------
    callbacks : list
        The same list.
    """
    from skorch.callbacks import Checkpoint, TrainEndCheckpoint

    if worker_index() is None:
        return callbacks
    plain = [cb[1] if isinstance(cb, tuple) else cb for cb in callbacks]
    for cb in plain:
        if isinstance(cb, (Checkpoint, TrainEndCheckpoint)):
            _private_folder(cb)
    return callbacks


def _checkpoint_files(cb):
    """The file names a checkpoint writes (its ``f_*`` arguments, set)."""
    names = {key: getattr(cb, key) for key in vars(cb)
             if key.startswith("f_") and getattr(cb, key) is not None}
    for key, name in names.items():
        if not isinstance(name, (str, os.PathLike)) or os.path.isabs(name):
            raise ValueError(
                f"{type(cb).__name__}({key}={name!r}) would be shared by the "
                "fits that run in parallel (GridSearchCV(n_jobs=...), dask): "
                "each needs its own checkpoint files. Give a relative file "
                "name (and a dirname): sknn then gives each parallel fit its "
                "own folder under dirname.")
    return names


def _private_folder(cb):
    import shutil

    names = _checkpoint_files(cb)
    shared = os.fspath(cb.dirname or "")
    if shared:
        os.makedirs(shared, exist_ok=True)
    private = tempfile.mkdtemp(prefix="sknn-fit-", dir=shared or None)
    prefix = getattr(cb, "fn_prefix", "") or ""
    for name in names.values():
        name = os.fspath(name)
        if "{" in name:
            continue  # formatted per epoch: nothing to resume from
        source = os.path.join(shared or os.curdir, prefix + name)
        if os.path.isfile(source):
            target = os.path.join(private, prefix + name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target)
    cb.dirname = private
