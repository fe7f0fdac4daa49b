"""The thread policy of a fit: the tuner's decisions with the clock faked, and
the budget scope."""

from types import SimpleNamespace

import pytest
import torch
from skorch.callbacks import Callback

from sknn._threads import (
    SMALL_BATCH_WORK,
    ThreadTuner,
    candidate_counts,
    fit_threads,
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeHistory:
    def __init__(self):
        self.records = []

    def record(self, key, value):
        self.records.append((key, value))


@pytest.fixture
def threads():
    """Sets torch's threads for a test and restores them afterwards."""
    before = torch.get_num_threads()

    def set_budget(n):
        torch.set_num_threads(n)

    yield set_budget
    torch.set_num_threads(before)


def drive(tuner, seconds_per_batch, n_batches, device="cpu", rows=50):
    """Run ``n_batches`` training batches through the tuner; each takes
    ``seconds_per_batch(threads in use)`` on the tuner's fake clock. Returns
    the thread count of each batch."""
    net = SimpleNamespace(device=device, history=FakeHistory())
    batch = (torch.zeros(rows, 2), torch.zeros(rows))
    used = []
    for _ in range(n_batches):
        tuner.on_batch_begin(net, batch=batch, training=True)
        used.append(torch.get_num_threads())
        tuner.clock.now += seconds_per_batch(used[-1])
        tuner.on_batch_end(net, batch=batch, training=True)
    return used


def new_tuner(budget_net_device="cpu", busy=lambda: None):
    tuner = ThreadTuner(probe_batches=3, recheck_seconds=2.0, margin=0.05,
                        alarm=2.0, clock=FakeClock(), busy=busy)
    tuner.initialize()
    tuner.on_train_begin(SimpleNamespace(device=budget_net_device))
    return tuner


def test_candidates_span_one_to_the_budget():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(16) == [1, 4, 8, 16]


def test_keeps_one_thread_when_the_other_core_is_busy(threads):
    threads(2)
    tuner = new_tuner()
    # contention: two threads wait for a core another process holds
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.018}[n], 20)
    assert used[:4] == [1] * 4 and used[4:8] == [2] * 4  # warm-up + 3 timed each
    assert tuner.choice_ == 1 and used[8:] == [1] * 12
    assert torch.get_num_threads() == 1


def test_keeps_two_threads_when_they_are_faster(threads):
    threads(2)
    tuner = new_tuner()
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.006}[n], 20)
    assert tuner.choice_ == 2 and used[8:] == [2] * 12


def test_prefers_fewer_threads_within_the_margin(threads):
    threads(2)
    tuner = new_tuner()
    drive(tuner, lambda n: {1: 0.0100, 2: 0.0098}[n], 10)  # 2% faster: not worth it
    assert tuner.choice_ == 1


def test_rechecks_and_follows_a_change_of_load(threads):
    threads(2)
    tuner = new_tuner()
    drive(tuner, lambda n: {1: 0.010, 2: 0.030}[n], 10)  # busy machine
    assert tuner.choice_ == 1
    # the other process ends: two threads are faster now; within 2 s of
    # batches the tuner measures again and switches
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.006}[n], 400)
    assert tuner.choice_ == 2 and used[-1] == 2
    first_probe = used.index(2)
    assert 190 <= first_probe <= 210  # after recheck_seconds of 10 ms batches


def test_a_stalled_batch_starts_a_new_comparison_at_once(threads):
    threads(2)
    tuner = new_tuner()
    drive(tuner, lambda n: {1: 0.010, 2: 0.006}[n], 10)
    assert tuner.choice_ == 2
    # the threads start waiting for each other: 2 threads 20 times slower
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.120}[n], 12)
    assert used[0] == 2  # the stalled batch
    assert used[1:5] == [1] * 4  # compared at once: one thread first,
    assert used[5] == 2 and used[6:] == [1] * 6  # two dropped after one batch
    assert tuner.choice_ == 1


def test_ignores_validation_batches_and_other_devices(threads):
    threads(2)
    tuner = new_tuner()
    net = SimpleNamespace(device="cpu", history=FakeHistory())
    tuner.on_batch_begin(net, batch=None, training=False)
    assert torch.get_num_threads() == 2 and len(tuner.queue_) == 8
    gpu = new_tuner("cuda")
    assert gpu.candidates_ == []
    assert drive(gpu, lambda n: 0.01, 10) == [2] * 10


def test_single_thread_budget_is_left_alone(threads):
    threads(1)
    tuner = new_tuner()
    assert tuner.candidates_ == []
    assert drive(tuner, lambda n: 0.01, 5) == [1] * 5


def test_history_records_the_threads_in_use(threads):
    threads(2)
    tuner = new_tuner()
    drive(tuner, lambda n: {1: 0.010, 2: 0.030}[n], 10)
    net = SimpleNamespace(history=FakeHistory())
    tuner.on_epoch_end(net)
    assert net.history.records == [("threads", 1)]


def test_small_batches_get_one_thread_and_the_setting_comes_back(threads):
    threads(2)
    with fit_threads(SMALL_BATCH_WORK - 1) as budget:
        assert budget == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with fit_threads(SMALL_BATCH_WORK) as budget:
        assert budget == 2
        torch.set_num_threads(1)  # as the tuner may
    assert torch.get_num_threads() == 2


class ThreadsInUse(Callback):
    """Records torch's thread setting at each training batch (after the tuner
    has set it) and at each epoch's end; leaves one thread set at the end."""

    def initialize(self):
        self.batches_, self.epochs_ = [], []
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.batches_.append(torch.get_num_threads())

    def on_epoch_end(self, net, **kwargs):
        self.epochs_.append(torch.get_num_threads())

    def on_train_end(self, net, **kwargs):
        # the fit ends on one thread whatever the tuner chose: the scope must
        # bring the caller's setting back
        torch.set_num_threads(1)


def test_a_real_fit_records_threads_and_restores_them(threads, digits):
    from sknn import MLPClassifierTorch

    threads(2)
    X, y = digits
    clf = MLPClassifierTorch(hidden_layer_sizes=(512,), max_iter=2, random_state=0,
                             device="cpu", callbacks=[ThreadsInUse()]).fit(X, y)
    seen = dict(clf.net_.callbacks_)["ThreadsInUse"]
    # the tuner ran inside the fit: its comparison starts on one thread (fewest
    # first: the warm-up batch and the timed ones), below the budget of 2
    assert seen.batches_[:5] == [1] * 5
    # the history records the count each epoch ended on, not just a value in range
    assert clf.net_.history[:, "threads"] == seen.epochs_
    assert len(seen.epochs_) == 2
    # the caller's setting comes back although the fit left it at one thread
    assert torch.get_num_threads() == 2


def test_a_far_slower_count_is_dropped_after_one_batch(threads):
    threads(2)
    tuner = new_tuner()
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.300}[n], 10)
    assert used[:5] == [1, 1, 1, 1, 2] and used[5:] == [1] * 5
    assert tuner.choice_ == 1


def test_stalls_count_against_more_threads(threads):
    threads(2)
    tuner = new_tuner()
    tuner.alarm = 10.0  # no count dropped here
    # two threads: fast but for one stall in three batches (a busy machine);
    # their median would win, their mean does not
    stalls = iter([0.004, 0.004, 0.004, 0.025] * 10)
    drive(tuner, lambda n: 0.010 if n == 1 else next(stalls), 10)
    assert tuner.choice_ == 1


def test_counts_beyond_the_free_cores_are_not_tried(threads, monkeypatch):
    import sknn._threads as th

    monkeypatch.setattr(th, "_cpu_total", lambda: 2)
    threads(2)
    # one other process runs all the time: no free core for a second thread
    tuner = new_tuner(busy=lambda: 1)
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.004}[n], 10)
    assert used == [1] * 10 and tuner.choice_ == 1
    # a quiet machine: two threads are tried, and kept
    threads(2)
    tuner = new_tuner(busy=lambda: 0)
    used = drive(tuner, lambda n: {1: 0.010, 2: 0.004}[n], 10)
    assert used[4:8] == [2] * 4 and tuner.choice_ == 2


def test_busy_elsewhere_reads_procs_running_or_says_none(monkeypatch):
    import builtins
    import io
    import os

    from sknn._threads import busy_elsewhere

    real_open = builtins.open
    stat = "cpu  1 2 3\nprocs_running 3\nprocs_blocked 0\n"
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: (
        io.StringIO(stat) if path == "/proc/stat" else real_open(path, *a, **k)))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    assert busy_elsewhere() == 2  # three running, this one among them
    stat = "procs_running 1\n"
    assert busy_elsewhere() == 0
    # a container held to 2 of the host's 4 cores: the host's count says nothing
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert busy_elsewhere() is None
    # no /proc (macOS, Windows): unknown, not an error
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: (
        real_open("/nonexistent/stat") if path == "/proc/stat"
        else real_open(path, *a, **k)))
    assert busy_elsewhere() is None
