"""How many CPU threads a fit uses: its budget, and the count that is fastest now.

Two layers, both scoped to one fit and restored afterwards:

- **The budget** (:func:`fit_threads`). In the caller's own process a fit may
  use what torch is set to (``torch.set_num_threads``, or a
  ``threadpoolctl.threadpool_limits`` the caller put around the fit). In a
  joblib or dask worker it gets at most ``cores // concurrent fits`` and never
  more than the worker was given (see :func:`fit_thread_count`). A fit whose
  batches are small runs on one thread: a second one only costs time. BLAS
  libraries (numpy's OpenBLAS) are held to the same budget with threadpoolctl.
- **The count within the budget** (:class:`ThreadTuner`). How many threads are
  fastest depends on what else runs on the machine: on 2 cores, an MNIST MLP
  fit took 0.48 s on 2 threads and 0.62 s on 1 when the machine was quiet,
  but 1.83 s on 2 threads and 0.62 s on 1 beside one busy process (OpenMP's
  threads wait for a core the other process holds). The tuner times a few
  training batches at each candidate count, keeps the fastest, and times them
  again every couple of seconds, so a fit follows the load as it changes.
"""

import threading
import time
from contextlib import contextmanager

import torch
from skorch.callbacks import Callback

from sknn import _parallel

#: below this many multiply-accumulates per training batch a fit runs on one
#: CPU thread: measured on a 300 x 5 problem, 0.26 s on one thread and 9.2 s
#: on two while the other core was busy
SMALL_BATCH_WORK = 4_000_000

_lock = threading.Lock()
#: sknn fits running at this moment in this process (threads of one process)
_active_fits = 0
_controller = None


def fit_thread_count(concurrent=1):
    """The number of torch intra-op threads one fit may use here.

    Parameters
    ----------
    concurrent : int, default=1
        sknn fits running at once in this process, this one included.

    Returns
    -------
    n_threads : int
        In the caller's own process: ``torch.get_num_threads()``, unchanged.
        In a joblib or dask worker: at most ``cores // concurrent`` (dask:
        ``cores // worker threads``), at most what the worker process was given
        through ``OMP_NUM_THREADS``, at most torch's current setting, and at
        least 1.
    """
    current = torch.get_num_threads()
    dask = _parallel.dask_worker()
    if dask is not None:
        # every task thread of the worker may run a fit at the same time
        concurrent = max(concurrent, _parallel.dask_threads(dask))
    elif not _parallel.in_joblib_worker():
        return current
    cap = _parallel.cpu_count() // max(concurrent, 1)
    given = _parallel.env_thread_limit()
    if given is not None:
        cap = min(cap, given)
    return max(1, min(current, cap))


def _blas_controller():
    """One threadpoolctl controller per process: finding the loaded native
    libraries costs ~2 ms, limiting them afterwards ~0.03 ms."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def fit_threads(batch_work=None):
    """Scope of one fit: its CPU thread budget, restored afterwards.

    Parameters
    ----------
    batch_work : int or None, default=None
        Multiply-accumulates of one training batch; below
        :data:`SMALL_BATCH_WORK` the fit gets one thread.

    Yields
    ------
    budget : int
        The torch threads the fit may use (torch is set to it on entry). On
        exit torch's setting and the BLAS libraries' are the caller's again,
        and cached CUDA memory is released.
    """
    global _active_fits
    with _lock:
        _active_fits += 1
        concurrent = _active_fits
    before = torch.get_num_threads()
    try:
        budget = fit_thread_count(concurrent)
        if batch_work is not None and batch_work < SMALL_BATCH_WORK:
            budget = 1
        with _blas_controller().limit(limits=budget, user_api="blas"):
            if budget != before:
                torch.set_num_threads(budget)
            yield budget
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        with _lock:
            _active_fits -= 1
        _parallel.release_device_memory()


def candidate_counts(budget):
    """The thread counts the tuner compares: 1, budget and up to two between."""
    return sorted({1, max(1, budget // 4), max(1, budget // 2), budget})


class ThreadTuner(Callback):
    """Keep the fastest torch thread count while a CPU fit runs.

    At the start of training, and again every ``recheck_seconds``, each count
    of :func:`candidate_counts` (the budget torch is set to) runs one warm-up
    training batch and then ``probe_batches`` timed ones; the count with the
    smallest mean time per sample is kept. The mean, not the median: on a
    shared machine the cost of extra threads is their stalls, the slow tail.
    A larger count is kept only when it is faster by more than ``margin``, so
    that a fit never holds threads it does not need. Each epoch records the
    count in use as ``threads`` in the history. Nothing happens on other
    devices or with a budget of one thread.

    Parameters
    ----------
    probe_batches : int, default=4
        Timed batches per candidate count.
    recheck_seconds : float, default=2.0
        Time between the end of one comparison and the start of the next.
    margin : float, default=0.1
        Relative speed-up a larger thread count must show to be kept.
    clock : callable, default=time.perf_counter
        Returns seconds; replaceable for tests.
    """

    def __init__(self, probe_batches=4, recheck_seconds=2.0, margin=0.1,
                 clock=time.perf_counter):
        self.probe_batches = probe_batches
        self.recheck_seconds = recheck_seconds
        self.margin = margin
        self.clock = clock

    def initialize(self):
        self.candidates_ = []
        self.choice_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        budget = torch.get_num_threads()
        cpu = torch.device(net.device).type == "cpu"
        self.candidates_ = candidate_counts(budget) if cpu and budget > 1 else []
        self.choice_ = budget
        self.started_ = None
        if self.candidates_:
            self._start_probe()

    def _start_probe(self):
        # the current choice first: no switch until the others are timed
        order = [self.choice_] + [n for n in self.candidates_ if n != self.choice_]
        self.queue_ = [(n, i) for n in order for i in range(self.probe_batches + 1)]
        self.timings_ = {n: [] for n in self.candidates_}

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training or not self.candidates_:
            return
        if self.queue_:
            n_threads = self.queue_[0][0]
            if torch.get_num_threads() != n_threads:
                torch.set_num_threads(n_threads)
        self.started_ = self.clock()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if not training or not self.candidates_ or self.started_ is None:
            return
        now = self.clock()
        if not self.queue_:
            if now >= self.next_probe_:
                self._start_probe()
            return
        n_threads, index = self.queue_.pop(0)
        if index > 0:  # the first batch at a new count warms it up
            self.timings_[n_threads].append((now - self.started_) / _rows(batch))
        if not self.queue_:
            self._choose()
            self.next_probe_ = self.clock() + self.recheck_seconds

    def _choose(self):
        means = {n: sum(t) / len(t) for n, t in self.timings_.items() if t}
        best = min(means.values())
        # the fewest threads whose time is within margin of the fastest
        self.choice_ = min(n for n, t in means.items()
                           if t <= best * (1 + self.margin))
        if torch.get_num_threads() != self.choice_:
            torch.set_num_threads(self.choice_)

    def on_epoch_end(self, net, **kwargs):
        net.history.record("threads", torch.get_num_threads())


def _rows(batch):
    X = batch[0]
    if isinstance(X, dict):
        X = X["X"]
    return max(len(X), 1)
