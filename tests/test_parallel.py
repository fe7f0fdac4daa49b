"""Fits in parallel workers: torch threads per fit, GPU choice, grid search."""

import os
import shutil
import threading

import numpy as np
import pytest
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

import sknn._parallel as par
import sknn._threads as th
from sknn import MLPClassifierTorch


class ThreadRecorder(Callback):
    """Records the torch intra-op threads in effect while the net trains."""

    def initialize(self):
        self.seen_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.seen_ = torch.get_num_threads()


def _threads_seen(clf):
    return dict(clf.net_.callbacks_)["ThreadRecorder"].seen_


def _tiny_fit(X, y, hidden=(8,)):
    clf = MLPClassifierTorch(hidden_layer_sizes=hidden, max_iter=2, random_state=0,
                             callbacks=[ThreadRecorder()])
    return clf.fit(X, y)


def _fit_with_caller_threads(X, y, caller_threads):
    """Run in a worker: the caller's setting is deliberately above the budget."""
    torch.set_num_threads(caller_threads)
    # wide enough that the estimator's own one-thread rule for small batches
    # does not apply: the limit seen comes from the worker's budget
    clf = _tiny_fit(X, y, hidden=(400,))
    return (_threads_seen(clf), torch.get_num_threads(),
            int(os.environ["OMP_NUM_THREADS"]), par.cpu_count())


@pytest.fixture(scope="module")
def small(digits):
    X, y = digits
    return X[:300].astype(np.float32), y[:300]


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------- threads
def test_fit_in_loky_worker_uses_the_worker_thread_limit_and_restores(small):
    X, y = small
    # loky exports OMP_NUM_THREADS=max(cores // n_jobs, 1) to its workers
    results = Parallel(n_jobs=2)(
        delayed(_fit_with_caller_threads)(X, y, 64) for _ in range(2))
    for seen, after, given, cores in results:
        assert seen == max(1, min(given, cores))
        assert seen < 64
        assert after == 64


def test_fit_scope_in_caller_process_keeps_torch_setting(restore_torch_threads):
    torch.set_num_threads(3)
    with th.fit_threads() as n_threads:
        assert n_threads == 3
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 3


def test_fit_scope_honours_threadpoolctl_limit_of_caller(restore_torch_threads):
    torch.set_num_threads(2)
    with threadpool_limits(limits=1, user_api="openmp"):
        with th.fit_threads() as n_threads:
            assert n_threads == 1
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_threads_restored_when_fit_fails(small, restore_torch_threads, monkeypatch):
    X, y = small
    monkeypatch.setattr(par, "in_joblib_worker", lambda: True)
    monkeypatch.setattr(par, "cpu_count", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(4)
    with pytest.raises(RuntimeError, match="boom"):
        with th.fit_threads() as n_threads:
            assert n_threads == 4 and torch.get_num_threads() == 4
            with th.fit_threads() as inner:
                # two fits at once in one process (threading backend) share
                assert inner == 2 and torch.get_num_threads() == 2
                raise RuntimeError("boom")
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize(
    "in_worker, env, cores, concurrent, current, expected",
    [
        (False, None, 8, 2, 8, 8),  # caller's process: torch's setting
        (True, None, 8, 2, 8, 4),  # threading backend: cores // fits at once
        (True, "3", 8, 1, 8, 3),  # loky gave the worker OMP_NUM_THREADS=3
        (True, "16", 8, 1, 8, 8),  # never more than torch's current setting
        (True, None, 2, 4, 2, 1),  # at least one thread
    ],
)
def test_fit_thread_count(monkeypatch, restore_torch_threads, in_worker, env,
                          cores, concurrent, current, expected):
    monkeypatch.setattr(par, "in_joblib_worker", lambda: in_worker)
    monkeypatch.setattr(par, "cpu_count", lambda: cores)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    torch.set_num_threads(current)
    assert th.fit_thread_count(concurrent) == expected


# -------------------------------------------------------------------- device
@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend n CUDA devices are visible; returns a setter."""

    def set_gpus(n):
        monkeypatch.setattr(par, "_cuda_available", lambda: n > 0)
        monkeypatch.setattr(par, "_cuda_device_count", lambda: n)

    return set_gpus


def test_auto_device_in_caller_process_is_cuda(fake_gpus):
    fake_gpus(4)
    assert par.resolve_device("auto") == "cuda"
    fake_gpus(0)
    assert par.resolve_device("auto") == "cpu"


@pytest.mark.parametrize("n_gpus, expected", [
    (4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]),
    (2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0", "cuda:1"]),
    (1, ["cuda"] * 6),
])
def test_auto_device_round_robin_over_gpus(fake_gpus, monkeypatch, n_gpus,
                                           expected):
    fake_gpus(n_gpus)
    devices = []
    for index in range(6):
        monkeypatch.setattr(par, "worker_index", lambda index=index: index)
        devices.append(par.resolve_device("auto"))
    assert devices == expected


def test_explicit_device_not_rewritten_in_workers(fake_gpus, monkeypatch):
    fake_gpus(4)
    monkeypatch.setattr(par, "worker_index", lambda: 3)
    assert par.resolve_device("cuda:0") == "cuda:0"
    assert par.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="only 4 CUDA device"):
        par.resolve_device("cuda:7")


def test_threading_workers_get_different_gpus(fake_gpus):
    fake_gpus(2)
    barrier = threading.Barrier(2, timeout=30)

    def task():
        barrier.wait()  # both pool threads are running tasks at once
        return threading.get_ident(), par.resolve_device("auto")

    results = Parallel(n_jobs=2, backend="threading")(delayed(task)() for _ in range(2))
    assert len({ident for ident, _ in results}) == 2
    assert {device for _, device in results} == {"cuda:0", "cuda:1"}


def _device_in_loky_worker():
    import multiprocessing

    import sknn._parallel as worker_par

    # the worker process outlives this task: put its functions back afterwards
    real = worker_par._cuda_available, worker_par._cuda_device_count
    worker_par._cuda_available = lambda: True
    worker_par._cuda_device_count = lambda: 2
    try:
        return (multiprocessing.current_process().name,
                worker_par.resolve_device("auto"))
    finally:
        worker_par._cuda_available, worker_par._cuda_device_count = real


def test_loky_workers_round_robin_by_process_number():
    results = Parallel(n_jobs=2)(delayed(_device_in_loky_worker)() for _ in range(4))
    for name, device in results:
        number = int(name.rsplit("-", 1)[1])
        assert device == f"cuda:{(number - 1) % 2}"


def test_cuda_cache_released_after_fit_only_when_cuda_in_use(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    with th.fit_threads():
        pass
    assert calls == []  # a CPU-only process never touches CUDA
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="fit failed"):
        with th.fit_threads():
            raise RuntimeError("fit failed")
    assert calls == [1]  # released after a failed fit too


# --------------------------------------------------------------- grid search
def test_grid_search_n_jobs_2_matches_n_jobs_1(digits, restore_torch_threads):
    X, y = digits
    # one thread here too (as in the workers): faster on a busy 2-core machine
    torch.set_num_threads(1)
    X, y = X[:450].astype(np.float32), y[:450]
    grid = {"hidden_layer_sizes": [(2,), (32,)]}
    est = MLPClassifierTorch(max_iter=15, learning_rate_init=0.01, random_state=0)
    searches = []
    for n_jobs in (1, 2):
        search = GridSearchCV(est, grid, cv=3, n_jobs=n_jobs)
        searches.append(search.fit(X, y))
    one, two = searches
    assert one.best_params_ == two.best_params_ == {"hidden_layer_sizes": (32,)}
    # a worker trains with fewer threads: summation order may differ slightly
    np.testing.assert_allclose(one.cv_results_["mean_test_score"],
                               two.cv_results_["mean_test_score"], atol=0.02)
    assert two.score(X, y) > 0.8


# --------------------------------------------------------------- checkpoints
def test_checkpoints_in_workers_go_to_per_fit_directories(
        small, tmp_path, monkeypatch):
    from skorch.callbacks import Checkpoint, LoadInitState

    X, y = small
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(par, "worker_index", lambda: 0)
    resume = Checkpoint(monitor=None, dirname="")
    dirs = []
    for _ in range(2):
        clf = MLPClassifierTorch(
            hidden_layer_sizes=(8,), max_iter=1, random_state=0,
            callbacks=[Checkpoint(monitor=None)])
        clf.fit(X, y)
        dirname = dict(clf.net_.callbacks_)["Checkpoint"].dirname
        assert os.path.isfile(os.path.join(dirname, "params.pt"))
        dirs.append(dirname)
    assert list(tmp_path.iterdir()) == []  # nothing in the shared directory
    assert len(set(dirs)) == 2
    for dirname in dirs:
        shutil.rmtree(dirname)
    # a checkpoint a LoadInitState resumes from: its files are copied into
    # the fit's own folder, which it resumes from and writes to
    (tmp_path / "params.pt").write_bytes(b"saved state")
    callbacks = par.isolate_checkpoints([resume, LoadInitState(resume)])
    private = callbacks[0].dirname
    assert os.path.basename(private).startswith("sknn-fit-")
    with open(os.path.join(private, "params.pt"), "rb") as f:
        assert f.read() == b"saved state"
    shutil.rmtree(private)
    # in the caller's process skorch's default (the current directory) stays
    monkeypatch.setattr(par, "worker_index", lambda: None)
    assert par.isolate_checkpoints([Checkpoint()])[0].dirname == ""


def test_explicit_checkpoint_dirname_gets_a_folder_per_parallel_fit(
        tmp_path, monkeypatch):
    from skorch.callbacks import Checkpoint, TrainEndCheckpoint

    monkeypatch.setattr(par, "worker_index", lambda: 1)
    shared = tmp_path / "ckpt"
    first = par.isolate_checkpoints([Checkpoint(dirname=str(shared)),
                                     ("end", TrainEndCheckpoint(dirname=shared))])
    second = par.isolate_checkpoints([Checkpoint(dirname=str(shared))])
    folders = {first[0].dirname, first[1][1].dirname, second[0].dirname}
    assert len(folders) == 3
    assert all(os.path.dirname(f) == str(shared) for f in folders)
    with open(os.devnull, "wb") as stream:
        for shared_file in (Checkpoint(dirname="x", f_params="/abs/params.pt"),
                            Checkpoint(f_params=stream)):
            with pytest.raises(ValueError, match="shared by the fits that run "
                                                 "in parallel"):
                par.isolate_checkpoints([shared_file])
    monkeypatch.setattr(par, "worker_index", lambda: None)
    assert par.isolate_checkpoints([Checkpoint(dirname="x")])[0].dirname == "x"


def test_grid_search_n_jobs_2_with_a_shared_checkpoint_dirname(
        small, tmp_path, restore_torch_threads):
    """The case that scored NaN: Checkpoint(dirname=..., load_best=True) in a
    GridSearchCV(n_jobs=2); every fit now reads back its own best weights."""
    import joblib
    from skorch.callbacks import Checkpoint

    X, y = small
    torch.set_num_threads(1)
    shared = tmp_path / "ckpt"
    est = MLPClassifierTorch((16,), max_iter=10, batch_size=32,
                             learning_rate_init=0.01, random_state=0, device="cpu",
                             callbacks=[Checkpoint(dirname=str(shared),
                                                   monitor="train_loss_best",
                                                   load_best=True)])
    grid = {"alpha": [1e-4, 1e-3, 1e-2, 1e-1]}
    results = []
    for n_jobs in (1, 2):
        search = GridSearchCV(est, grid, cv=2, n_jobs=n_jobs, error_score="raise")
        # threads: the fits run at the same time, in one process
        with joblib.parallel_backend("threading", n_jobs=n_jobs):
            results.append(search.fit(X, y).cv_results_["mean_test_score"])
    assert np.isfinite(results[1]).all()
    assert min(results[1]) > 0.5  # each fit read back its own (trained) best
    np.testing.assert_allclose(results[1], results[0], atol=0.02)
    folders = [p for p in shared.iterdir() if p.name.startswith("sknn-fit-")]
    assert len(folders) == 8  # one per parallel fit (2 folds x 4 candidates)
    assert all((p / "params.pt").is_file() for p in folders)


def test_dask_worker_budget_and_index_from_worker_threads(
        monkeypatch, restore_torch_threads):
    class State:
        nthreads = 2

    class Worker:
        name = 1
        state = State()

    monkeypatch.setattr(par, "dask_worker", lambda: Worker())
    monkeypatch.setattr(par, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(8)
    # two task threads may fit at once: 8 cores // 2
    assert th.fit_thread_count(1) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what the dask nanny exports
    assert th.fit_thread_count(1) == 1
    # worker 1 with 2 threads: its main thread is worker slot 1 * 2 + 0
    assert par.worker_index() == 2
