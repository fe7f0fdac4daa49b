"""scikit-learn's callbacks (``sklearn.callback``, 1.9+) on sknn estimators:
the task tree they receive (also from inside a grid search, in workers), the
epoch snapshots that ``ScoringMonitor`` scores, a callback's request to stop,
and the adapter's no-op with a scikit-learn that has no callbacks."""

import importlib
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import CNNClassifier, MLPClassifierTorch

pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callbacks")

from sklearn.callback import ProgressBar, ScoringMonitor  # noqa: E402
from sklearn.callback._callback_context import get_context_path  # noqa: E402
from sklearn.callback._transport import open_listener, send  # noqa: E402


class TaskTree:
    """An auto-propagated callback that records each task's path, as
    scikit-learn's own test callbacks do (through its transport, so that a
    worker process's hooks reach the main process)."""

    max_propagation_depth = None

    def __init__(self):
        self.record = []
        self._handle = open_listener(self.record.append, owner=self)

    def __getstate__(self):
        return {**self.__dict__, "record": []}

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def _send(self, hook, context, fitted):
        path = tuple((ctx.estimator_name, ctx.task_name, ctx.task_id)
                     for ctx in get_context_path(context))
        send(self._handle, {"hook": hook, "path": path,
                            "max_subtasks": context.max_subtasks,
                            "n_iter": getattr(fitted, "n_iter_", None),
                            "epochs": len(getattr(fitted, "history_", ()))})

    def on_fit_task_begin(self, estimator, context):
        self._send("begin", context, None)

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        self._send("end", context, fitted_estimator)

    def ends(self, estimator_name):
        return [r for r in self.record
                if r["hook"] == "end" and r["path"][-1][0] == estimator_name]


def test_without_sklearn_callback_the_adapter_does_nothing(monkeypatch):
    # scikit-learn < 1.9 has no sklearn.callback: the adapter, reloaded where
    # importing its names fails, stands for it
    import sklearn.callback as api

    from sknn import _sklearn_callbacks as adapter

    monkeypatch.delattr(api, "CallbackSupportMixin")
    monkeypatch.delattr(api, "with_callbacks")
    try:
        importlib.reload(adapter)
        assert not adapter.AVAILABLE
        assert adapter.with_callbacks(len) is len

        class Probe(adapter.CallbackSupportMixin, BaseEstimator):
            pass

        assert not hasattr(Probe(), "set_callbacks")
        first, last = {}, {}
        adapter.add_net_callbacks(first, last)
        assert first == last == {}
        # an estimator fitted meanwhile reports nothing, and its net has no
        # scikit-learn callback
        tree = TaskTree()
        X = np.random.RandomState(0).rand(40, 3)
        est = MLPClassifierTorch(hidden_layer_sizes=(4,), max_iter=2, tol=1.0)
        est.set_callbacks(tree).fit(X, X[:, 0] > 0.5)
        assert tree.record == []
        assert not [n for n, _ in est.net_.callbacks_ if n.startswith("sklearn_call")]
    finally:
        monkeypatch.undo()
        importlib.reload(adapter)
    assert adapter.AVAILABLE


class StopAt:
    """Asks to stop at the end of the given epoch (1-based) of each fit."""

    def __init__(self, epoch):
        self.epoch = epoch

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        return context.task_name == "epoch" and context.task_id + 1 == self.epoch


class KeepSnapshots(StopAt):
    """Keeps the estimator each epoch hands to its callbacks."""

    def __init__(self):
        super().__init__(epoch=0)
        self.kept = []

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name == "epoch":
            self.kept.append(fitted_estimator)


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:240].astype(np.float32), y[:240]


def _mlp(**params):
    return MLPClassifierTorch(hidden_layer_sizes=(16,), learning_rate_init=0.01,
                              batch_size=32, random_state=0, **params)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_reports_the_epochs_of_each_inner_fit(data, n_jobs):
    tree = TaskTree()
    search = GridSearchCV(make_pipeline(StandardScaler(), _mlp(max_iter=3)),
                          {"mlpclassifiertorch__alpha": [1e-4, 1e-2]}, cv=2,
                          n_jobs=n_jobs).set_callbacks(tree)
    search.fit(*data)
    fits = [r for r in tree.ends("MLPClassifierTorch")
            if r["path"][-1][1] == "fit"]
    epochs = [r for r in tree.ends("MLPClassifierTorch")
              if r["path"][-1][1] == "epoch"]
    # 2 candidates x 2 folds, and the refit: each a root task of 3 epochs,
    # attached under the Pipeline's fit inside the search
    assert len(fits) == 5
    assert all(r["max_subtasks"] == 3 and r["n_iter"] == 3 for r in fits)
    assert all(r["path"][-2][:2] == ("Pipeline", "fit") for r in fits)
    assert sum(r["path"][1][:2] == ("GridSearchCV", "search") for r in fits) == 4
    assert len(epochs) == 15
    by_fit = {}
    for r in epochs:
        by_fit.setdefault(r["path"][:-1], []).append(
            (r["path"][-1][2], r["n_iter"], r["max_subtasks"]))
    # task ids 0, 1, 2; each epoch's snapshot has trained that many epochs
    assert sorted(by_fit.values()) == [[(0, 1, 0), (1, 2, 0), (2, 3, 0)]] * 5


def test_progress_bar_under_a_grid_search(data, capsys):
    pytest.importorskip("rich")
    search = GridSearchCV(make_pipeline(StandardScaler(), _mlp(max_iter=2)),
                          {"mlpclassifiertorch__alpha": [1e-4]}, cv=2)
    search.set_callbacks(ProgressBar(max_propagation_depth=None)).fit(*data)
    out = capsys.readouterr().out
    assert "Pipeline - fit-final-estimator | MLPClassifierTorch - fit" in out


@pytest.mark.parametrize("make, shape", [
    (lambda: _mlp(max_iter=4), (-1, 64)),
    (lambda: CNNClassifier(conv_filters=(4,), dense_layer_sizes=(8,), max_iter=3,
                           learning_rate_init=0.01, batch_size=32,
                           random_state=0), (-1, 8, 8, 1)),
], ids=["mlp", "cnn"])
def test_scoring_monitor_scores_each_epoch_as_if_fit_stopped_there(
        data, make, shape):
    X, y = data[0].reshape(shape), data[1]
    monitor = ScoringMonitor(scoring="accuracy")
    est = make().set_callbacks(monitor).fit(X, y)
    rows = [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    assert [row["task_id"] for row in rows] == list(range(est.max_iter))
    # epoch k's score is that of the same model fitted for k epochs
    expected = [make().set_params(max_iter=k).fit(X, y).score(X, y)
                for k in range(1, est.max_iter + 1)]
    assert [row["accuracy"] for row in rows] == pytest.approx(expected)
    assert rows[-1]["accuracy"] == pytest.approx(est.score(X, y))
    assert len(set(expected)) > 1  # the epochs differ: the check can fail


def test_epoch_snapshot_is_a_frozen_usable_estimator(data):
    keep = KeepSnapshots()
    X, y = data
    est = _mlp(max_iter=3).set_callbacks(keep).fit(X, y)
    kept = keep.kept
    assert [snap.n_iter_ for snap in kept] == [1, 2, 3]
    for k, snap in enumerate(kept, 1):
        # its own weights, unchanged by the epochs trained after it
        assert snap.history_ == est.history_[:k]
        assert snap.loss_curve_ == est.loss_curve_[:k]
        assert np.array_equal(snap.coefs_[0], est.coefs_[0]) == (k == 3)
    np.testing.assert_array_equal(kept[-1].predict_proba(X), est.predict_proba(X))
    assert not hasattr(kept[0], "validation_scores_")
    # a snapshot pickles as a fitted model does
    loaded = pickle.loads(pickle.dumps(kept[0]))
    np.testing.assert_array_equal(loaded.predict_proba(X), kept[0].predict_proba(X))


def test_early_stopping_snapshots_hold_their_validation_scores(data):
    keep = KeepSnapshots()
    est = _mlp(max_iter=3, early_stopping=True).set_callbacks(keep).fit(*data)
    for k, snap in enumerate(keep.kept, 1):
        assert snap.validation_scores_ == est.validation_scores_[:k]
        assert snap.best_validation_score_ == max(est.validation_scores_[:k])
        # the snapshot's net holds no validation data
        assert snap.net_.train_split is None


@pytest.mark.parametrize("epoch", [1, 3])
def test_a_callback_that_asks_to_stop_ends_the_fit_there(data, epoch, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = _mlp(max_iter=6, progress_bar=True).set_callbacks(StopAt(epoch))
        est.fit(*data)
    assert est.n_iter_ == epoch
    assert len(est.history_) == epoch
    # the progress bar says why
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"Stopped early at epoch {epoch} of 6: a scikit-learn callback asked to "
        f"stop after epoch {epoch} of this fit.")


def test_partial_fit_is_one_task_of_one_epoch(data):
    tree = TaskTree()
    est = _mlp().set_callbacks(tree)
    est.partial_fit(*data, classes=np.unique(data[1]))
    est.partial_fit(*data)
    roots = [r for r in tree.record if r["hook"] == "end" and len(r["path"]) == 1]
    assert [(r["path"][0][1], r["max_subtasks"], r["epochs"]) for r in roots] == [
        ("partial_fit", 1, 1), ("partial_fit", 1, 2)]
    epochs = [r for r in tree.ends("MLPClassifierTorch") if len(r["path"]) == 2]
    assert [(r["path"][-1][1:], r["n_iter"], r["epochs"]) for r in epochs] == [
        (("epoch", 0), 1, 1), (("epoch", 0), 1, 2)]


def test_fitted_model_holds_no_reference_to_the_data(data):
    est = _mlp(max_iter=2).set_callbacks(ScoringMonitor(scoring="accuracy"))
    est.fit(*data)
    bridge = dict(est.net_.callbacks_)["sklearn_callbacks"]
    assert bridge.run_ is None and bridge.task_ is None
    assert not hasattr(est, "_callback_fit_ctx")
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(data[0]), est.predict(data[0]))
