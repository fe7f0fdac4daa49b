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


def busy_elsewhere():
    """Threads running now besides this one, machine-wide, or None where that
    is not known: Linux's ``procs_running`` (/proc/stat) minus the caller.

    Only where this process may run on every core the kernel counts: in a
    container limited to a few cores of a large host, the host's runnable
    threads say nothing about this container's share.
    """
    import os

    try:
        if len(os.sched_getaffinity(0)) != os.cpu_count():
            return None
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return max(int(line.split()[1]) - 1, 0)
    except (AttributeError, OSError, ValueError):
        pass
    return None


def candidate_counts(budget):
    """The thread counts the tuner compares: 1, budget and up to two between."""
    return sorted({1, max(1, budget // 4), max(1, budget // 2), budget})


class ThreadTuner(Callback):
    """Keep the fastest torch thread count while a CPU fit runs.

    Each count of :func:`candidate_counts` (up to the budget torch is set to)
    runs, in turn, one warm-up batch and ``probe_batches`` timed training
    batches, fewest threads first; a count whose batch takes ``alarm`` times
    as long as fewer threads took is dropped at once, and so is a count
    larger than the cores other threads leave free while one thread is timed
    (``busy``, where the machine tells). The count with the
    smallest mean time per sample is kept. The mean, not the median: on a
    shared machine the cost of extra threads is their stalls, the slow tail.
    A larger count is kept only when it is faster by more than ``margin``, so
    that a fit never holds threads it does not need.

    The comparison runs at the start of training, again every
    ``recheck_seconds``, and at once when a batch on more than one thread
    takes ``alarm`` times the mean that count had when it was chosen: with
    another process busy beside it, a 2-thread fit measured here ran either
    about as fast as on one thread or, once its threads began to wait for
    each other, 15-30 times slower, and that switch can come at any moment.
    Each epoch records the count in use as ``threads`` in the history.
    Nothing happens on other devices or with a budget of one thread.

    Parameters
    ----------
    probe_batches : int, default=4
        Timed batches per candidate count.
    recheck_seconds : float, default=2.0
        Time between the end of one comparison and the start of the next.
    margin : float, default=0.1
        Relative speed-up a larger thread count must show to be kept.
    alarm : float, default=3.0
        A batch this many times slower than its count's mean starts a new
        comparison at once (only above one thread).
    clock : callable, default=time.perf_counter
        Returns seconds; replaceable for tests.
    busy : callable, default=busy_elsewhere
        Returns the threads running elsewhere on the machine, or None when
        unknown; replaceable for tests.
    """

    def __init__(self, probe_batches=4, recheck_seconds=2.0, margin=0.1,
                 alarm=3.0, clock=time.perf_counter, busy=busy_elsewhere):
        self.probe_batches = probe_batches
        self.recheck_seconds = recheck_seconds
        self.margin = margin
        self.alarm = alarm
        self.clock = clock
        self.busy = busy

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
        # each count in turn, fewest threads first: a warm-up batch, then
        # probe_batches timed ones
        self.queue_ = [(n, timed) for n in self.candidates_
                       for timed in [False] + [True] * self.probe_batches]
        self.timings_ = {n: [] for n in self.candidates_}
        self.busy_seen_ = []

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
        per_sample = (now - self.started_) / _rows(batch)
        if not self.queue_:
            stalled = (self.choice_ > 1
                       and per_sample > self.alarm * self.means_[self.choice_])
            if stalled or now >= self.next_probe_:
                self._start_probe()
            return
        n_threads, timed = self.queue_.pop(0)
        if n_threads == 1:
            busy = self.busy()
            if busy is not None:
                self.busy_seen_.append(busy)
            if self.busy_seen_ and not any(n == 1 for n, _ in self.queue_):
                # the cores left free while one thread ran (the median count)
                free = _cpu_total() - sorted(self.busy_seen_)[
                    len(self.busy_seen_) // 2]
                self.queue_ = [item for item in self.queue_
                               if item[0] <= max(free, 1)]
        fewer = [sum(t) / len(t) for n, t in self.timings_.items()
                 if n < n_threads and t]
        if fewer and per_sample > self.alarm * min(fewer):
            # far slower than fewer threads, warm-up or not: stop timing this
            # count (under contention its batches can take 30 times longer)
            self.timings_[n_threads].append(per_sample)
            self.queue_ = [item for item in self.queue_ if item[0] != n_threads]
        elif timed:
            self.timings_[n_threads].append(per_sample)
        if not self.queue_:
            self._choose()
            self.next_probe_ = self.clock() + self.recheck_seconds

    def _choose(self):
        # counts left untried (no free core for them) are out of the running
        self.means_ = {n: sum(t) / len(t) for n, t in self.timings_.items() if t}
        best = min(self.means_.values())
        # the fewest threads whose time is within margin of the fastest
        self.choice_ = min(n for n, t in self.means_.items()
                           if t <= best * (1 + self.margin))
        if torch.get_num_threads() != self.choice_:
            torch.set_num_threads(self.choice_)

    def on_epoch_end(self, net, **kwargs):
        net.history.record("threads", torch.get_num_threads())


def _cpu_total():
    import os

    return os.cpu_count() or 1


def _rows(batch):
    X = batch[0]
    if isinstance(X, dict):
        X = X["X"]
    return max(len(X), 1)
