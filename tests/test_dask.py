"""Grid search on a dask.distributed cluster: a LocalCluster of 2 worker
processes on loopback, driven through ``joblib.parallel_backend("dask")``."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install sknn[dask])")

import joblib  # noqa: E402

from sknn import MLPClassifierTorch  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:450].astype(np.float32), y[:450]


class ThreadRecorder(Callback):
    """Records the torch intra-op threads in effect while the net trains."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.seen_ = torch.get_num_threads()


def _fit_and_report(X, y):
    """Runs on a dask worker: a fit, the threads it used, the threads after it,
    and its predictions made there."""
    caller = torch.get_num_threads()
    torch.set_num_threads(4)  # above the worker's budget on purpose
    try:
        # wide enough that the one-thread rule for small batches does not apply
        clf = MLPClassifierTorch(hidden_layer_sizes=(400,), max_iter=2,
                                 random_state=0, callbacks=[ThreadRecorder()])
        # a worker process: pytest's warnings policy (pyproject.toml) does not reach it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        seen = dict(clf.net_.callbacks_)["ThreadRecorder"].seen_
        return clf, seen, torch.get_num_threads(), clf.predict_proba(X)
    finally:
        torch.set_num_threads(caller)


def test_grid_search_on_local_cluster(client, data):
    X, y = data
    grid = {"hidden_layer_sizes": [(2,), (32,)]}
    est = MLPClassifierTorch(max_iter=15, learning_rate_init=0.01, random_state=0)
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        search = GridSearchCV(est, grid, cv=3).fit(X, y)
    # the same best candidate as tests/test_parallel.py finds with n_jobs=1
    assert search.best_params_ == {"hidden_layer_sizes": (32,)}
    assert search.best_score_ > search.cv_results_["mean_test_score"].min()
    # the cross-validation fits ran as tasks on the cluster's workers
    fits = [t for t in tasks.data if "fit_and_score" in str(t["key"])]
    assert len(fits) == 6  # 2 candidates x 3 folds
    assert {t["worker"] for t in fits} <= set(client.scheduler_info()["workers"])


def test_estimator_fitted_on_worker_predicts_identically_here(client, data):
    X, y = data
    future = client.submit(_fit_and_report, X, y, pure=False)
    clf, seen, after, worker_proba = future.result()
    # the nanny exports OMP_NUM_THREADS=1 to its workers: the fit used 1 thread,
    # and the worker's own setting came back afterwards
    assert seen == 1
    assert after == 4
    # the estimator crossed processes by pickling and predicts the same here
    np.testing.assert_array_equal(clf.predict_proba(X), worker_proba)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))


def test_fused_search_trains_its_stacks_on_the_cluster(client, data):
    # sknn's fused search under joblib's Dask backend: the stacks are tasks on
    # the cluster's workers, and the search scores what scikit-learn's search
    # of one fit after another scores in this process
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sknn import model_selection

    X, y = data
    grid = {"mlpclassifiertorch__hidden_layer_sizes": [(8,), (16,)],
            "mlpclassifiertorch__alpha": [1e-4, 1e-2]}
    pipe = make_pipeline(StandardScaler(), MLPClassifierTorch(
        max_iter=5, learning_rate_init=0.01, random_state=0))
    plain = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        fused = model_selection.GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(fused.cv_results_["mean_test_score"],
                               plain.cv_results_["mean_test_score"], atol=1e-6)
    assert fused.best_params_ == plain.best_params_
    stacks = [t for t in tasks.data if "train_stack" in str(t["key"])]
    assert stacks and {t["worker"] for t in stacks} <= set(
        client.scheduler_info()["workers"])
