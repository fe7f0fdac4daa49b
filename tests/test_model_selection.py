"""The fused search: stacked fits equal single fits, and the search equals
scikit-learn's."""

import os
import pickle
import warnings

import numpy as np
import pytest
from searches import assert_same_search, both
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

import sknn
from sknn import MLPClassifierTorch
from sknn._fused import prepare, train_stack


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X[:360]), y[:360]


def _stacked_and_single(X, y, params, **base):
    """The fits of ``params`` x 2 folds, trained as one stack and one by one."""
    base = MLPClassifierTorch(**{"hidden_layer_sizes": (12,), "max_iter": 3,
                                 "device": "cpu", **base})
    members, singles = [], []
    for k, (train, _) in enumerate(KFold(2).split(X)):
        for p in params:
            est = clone(base).set_params(random_state=k, **p)
            members.append(prepare(clone(est), X[train], y[train]))
            singles.append(est.fit(X[train], y[train]))
    stacked = train_stack(members)
    return [s for s, _ in stacked], singles


def _assert_same_fit(fused, single):
    assert not isinstance(fused, Exception), fused
    for a, b in zip(fused.coefs_ + fused.intercepts_,
                    single.coefs_ + single.intercepts_):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    assert fused.n_iter_ == single.n_iter_
    assert fused.t_ == single.t_
    np.testing.assert_allclose(fused.loss_curve_, single.loss_curve_, rtol=1e-5)
    if single.early_stopping:
        np.testing.assert_allclose(fused.validation_scores_,
                                   single.validation_scores_)
        assert fused.best_loss_ is None
    else:
        np.testing.assert_allclose(fused.best_loss_, single.best_loss_, rtol=1e-5)
    assert [sorted(r) for r in fused.history_] == [sorted(r) for r in single.history_]


@pytest.mark.parametrize("base", [
    {},
    {"solver": "sgd"},
    {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.1,
     "nesterovs_momentum": False},
    {"early_stopping": True, "batch_size": 50},
    {"class_weight": "balanced", "batch_size": 64, "hidden_layer_sizes": (8, 6),
     "activation": "tanh"},
], ids=["adam", "sgd", "sgd-invscaling", "early-stopping", "weighted-2-layers"])
def test_stacked_fits_equal_single_fits(digits, base):
    X, y = digits
    fused, singles = _stacked_and_single(
        X, y, [{"alpha": 1e-4}, {"alpha": 0.1, "learning_rate_init": 0.01}], **base)
    for f, s in zip(fused, singles):
        _assert_same_fit(f, s)
        np.testing.assert_array_equal(f.predict(X), s.predict(X))


def test_each_stacked_model_stops_where_its_single_fit_stops(digits):
    # early stopping on each fit's own validation split, and the adaptive
    # rate's divisions, end the fits at different epochs
    X, y = digits
    fused, singles = _stacked_and_single(
        X, y, [{"n_iter_no_change": 1}, {"n_iter_no_change": 3}],
        early_stopping=True, max_iter=40, batch_size=40)
    fused2, singles2 = _stacked_and_single(
        X, y, [{"learning_rate_init": 0.5}, {"learning_rate_init": 0.05}],
        solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=1,
        max_iter=40)
    stops = [s.n_iter_ for s in singles + singles2]
    assert len(set(stops)) > 2 and min(stops) < 40
    for f, s in zip(fused + fused2, singles + singles2):
        _assert_same_fit(f, s)


def test_stacked_initial_weights_are_the_single_fits(digits):
    X, y = digits
    est = MLPClassifierTorch((10,), max_iter=1, random_state=3, device="cpu",
                             learning_rate_init=1e-12)
    fused = train_stack([prepare(clone(est), X, y)])[0][0]
    single = clone(est).fit(X, y)
    from sknn._training import torch_rng

    with torch_rng(int(np.random.RandomState(3).randint(np.iinfo(np.int32).max)),
                   "cpu"):
        module = clone(est)._build_module(X.shape[1], 10)
    np.testing.assert_allclose(module.dense0.weight.detach().numpy().T,
                               single.coefs_[0], atol=1e-7)
    np.testing.assert_allclose(fused.coefs_[0], single.coefs_[0], atol=1e-7)


def test_stacked_fit_errors_are_the_single_fits(digits):
    X, y = digits
    est = MLPClassifierTorch((4,), early_stopping=True, validation_fraction=0.001,
                             device="cpu")
    (outcome, seconds), = train_stack([prepare(est, X[:50], y[:50])])
    assert isinstance(outcome, ValueError)
    assert "validation set is too small" in str(outcome)
    assert seconds >= 0


def test_stacked_fit_pickles_and_continues(digits):
    X, y = digits
    est = MLPClassifierTorch((8,), max_iter=2, random_state=0, device="cpu")
    fused = train_stack([prepare(clone(est), X, y)])[0][0]
    loaded = pickle.loads(pickle.dumps(fused))
    np.testing.assert_array_equal(loaded.predict_proba(X), fused.predict_proba(X))
    single = clone(est).fit(X, y)
    # partial_fit continues with the single fit's L2 term and rate
    assert fused.net_.optimizer_.param_groups[0]["weight_decay"] == pytest.approx(
        single.net_.optimizer_.param_groups[0]["weight_decay"])
    single = pickle.loads(pickle.dumps(single))
    loaded.partial_fit(X, y)
    single.partial_fit(X, y)
    _assert_same_fit(loaded, single)


# ------------------------------------------------------------------ the search
from sklearn.pipeline import Pipeline  # noqa: E402

from sknn import model_selection  # noqa: E402


def _pipe(**params):
    return Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifierTorch(
        **{"max_iter": 4, "random_state": 0, "device": "cpu", "batch_size": 64,
           **params}))])


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


def test_fused_grid_search_equals_sklearns(raw_digits, capsys):
    X, y = raw_digits
    grid = {"mlp__hidden_layer_sizes": [(16,), (8, 8)], "mlp__alpha": [1e-4, 1.0],
            "scale__with_mean": [True, False]}
    ours, theirs = both("GridSearchCV", _pipe(), grid, X, y, cv=2, verbose=1)
    assert_same_search(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    out = capsys.readouterr().out
    assert "[sknn] 16 fits in 2 stacks, 0 fits one by one" in out
    assert isinstance(ours.best_estimator_, Pipeline)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert all(t > 0 for t in ours.cv_results_["mean_fit_time"])
    loaded = pickle.loads(pickle.dumps(ours))
    np.testing.assert_array_equal(loaded.predict_proba(X), ours.predict_proba(X))
    assert loaded.estimator is ours.estimator or loaded.estimator.get_params(
        deep=False).keys() == _pipe().get_params(deep=False).keys()


def test_fused_search_multimetric_train_scores_and_refit(raw_digits):
    X, y = raw_digits
    grid = {"mlp__learning_rate_init": [1e-3, 1e-2], "mlp__beta_1": [0.9, 0.5]}
    ours, theirs = both(
        "GridSearchCV", _pipe(hidden_layer_sizes=(10,)), grid, X, y, cv=3,
        scoring=["accuracy", "neg_log_loss"], refit="neg_log_loss",
        return_train_score=True)
    assert_same_search(ours, theirs)
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-6)


def test_non_stacking_candidates_take_sklearns_path(raw_digits, capsys):
    X, y = raw_digits
    grid = [{"mlp__solver": ["lbfgs"], "mlp__max_iter": [10]},
            {"mlp__solver": ["adam"], "mlp__dropout": [0.0, 0.2]}]
    ours, theirs = both("GridSearchCV", _pipe(hidden_layer_sizes=(8,)), grid,
                         X, y, cv=2, verbose=1)
    assert_same_search(ours, theirs)
    out = capsys.readouterr().out
    assert "2 fits in 1 stacks, 4 fits one by one" in out


def test_failed_fits_score_error_score(raw_digits):
    X, y = raw_digits
    grid = {"mlp__validation_fraction": [0.001, 0.2]}
    est = _pipe(hidden_layer_sizes=(8,), early_stopping=True)
    with pytest.warns(FitFailedWarning, match="fits failed"):
        ours = model_selection.GridSearchCV(est, grid, cv=2, error_score=np.nan).fit(
            X[:40], y[:40])
    assert np.isnan(ours.cv_results_["mean_test_score"][0])
    assert np.isfinite(ours.cv_results_["mean_test_score"][1])
    with pytest.raises(ValueError, match="validation set is too small"):
        model_selection.GridSearchCV(est, grid, cv=2, error_score="raise").fit(
            X[:40], y[:40])


def test_fused_randomized_search_equals_sklearns(raw_digits):
    X, y = raw_digits
    dist = {"alpha": [1e-5, 1e-3, 1e-1, 1.0], "learning_rate_init": [1e-3, 3e-3]}
    est = MLPClassifierTorch((12,), max_iter=3, random_state=1, device="cpu",
                             solver="sgd", learning_rate_init=0.01)
    Xs = StandardScaler().fit_transform(X)
    ours, theirs = both("RandomizedSearchCV", est, dist, Xs, y, n_iter=3, cv=2,
                         random_state=0)
    assert_same_search(ours, theirs)
    assert isinstance(ours.best_estimator_, MLPClassifierTorch)


def test_memory_budget_and_workers_split_stacks(raw_digits, capsys, monkeypatch):
    from joblib import parallel_config

    X, y = raw_digits
    grid = {"mlp__alpha": [1e-4, 1e-2, 1.0]}
    monkeypatch.setattr(model_selection, "CPU_STACK_BYTES", 1)
    _, theirs = both("GridSearchCV", _pipe(hidden_layer_sizes=(8,)), grid, X, y,
                      cv=2)
    with parallel_config(backend="threading"):
        ours = model_selection.GridSearchCV(_pipe(hidden_layer_sizes=(8,)), grid,
                                            cv=2, verbose=1, n_jobs=2).fit(X, y)
    assert_same_search(ours, theirs)
    assert "6 fits in 6 stacks" in capsys.readouterr().out
    monkeypatch.undo()
    with parallel_config(backend="threading"):
        model_selection.GridSearchCV(_pipe(hidden_layer_sizes=(8,)), grid, cv=2,
                                     verbose=1, n_jobs=2).fit(X, y)
    assert "6 fits in 2 stacks" in capsys.readouterr().out


def test_gpu_stacks_train_one_at_a_time_in_the_process(raw_digits, monkeypatch):
    # no GPU here: the device is faked at planning, and the stacks that would
    # run on it are trained on the CPU, in this process, one after another
    import sknn._parallel

    X, y = raw_digits
    monkeypatch.setattr(sknn._parallel, "resolve_device",
                        lambda device: "cuda:0" if device == "cuda" else "cpu")
    calls = []

    def fake_train(members, device):
        calls.append((len(members), str(device)))
        for m in members:
            m.est.device_ = "cpu"
        return train_stack(members, "cpu")

    monkeypatch.setattr(model_selection, "_train_stack", fake_train)
    monkeypatch.setattr(model_selection, "_budget", lambda device: 1 << 30)
    grid = {"mlp__alpha": [1e-4, 1.0]}
    search = model_selection.GridSearchCV(
        _pipe(hidden_layer_sizes=(8,), device="cuda"), grid, cv=2,
        refit=False).fit(X, y)
    assert calls == [(4, "cuda:0")]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_a_failing_stack_falls_back_to_sklearns_path(raw_digits, monkeypatch):
    X, y = raw_digits

    def broken(members, device):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model_selection, "_train_stack", broken)
    grid = {"mlp__alpha": [1e-4, 1.0]}
    with pytest.warns(RuntimeWarning, match="could not train 4 fits as a stack"):
        ours = model_selection.GridSearchCV(_pipe(hidden_layer_sizes=(8,)), grid,
                                            cv=2).fit(X, y)
    _, theirs = both("GridSearchCV", _pipe(hidden_layer_sizes=(8,)), grid, X, y,
                      cv=2)
    assert_same_search(ours, theirs)


class _CountingScaler(StandardScaler):
    fits = 0

    def fit(self, X, y=None, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight)


def test_pipeline_steps_are_fitted_once_per_fold(raw_digits):
    X, y = raw_digits
    pipe = Pipeline([("scale", _CountingScaler()), ("mlp", MLPClassifierTorch(
        (8,), max_iter=2, random_state=0, device="cpu"))])
    grid = {"mlp__alpha": [1e-4, 1e-2, 1.0], "mlp__learning_rate_init": [1e-3, 1e-2]}
    _CountingScaler.fits = 0
    model_selection.GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert _CountingScaler.fits == 3 + 1  # one per fold, and the refit


def test_binary_and_multilabel_targets_stack_like_single_fits(digits):
    X, y = digits
    fused, singles = _stacked_and_single(X, y % 2, [{"alpha": 1e-4}, {"alpha": 1.0}],
                                         early_stopping=True, batch_size=40)
    Y = np.column_stack([y % 2, y > 4, y == 3]).astype(int)
    fused2, singles2 = _stacked_and_single(X, Y, [{"alpha": 1e-4}], solver="sgd")
    for f, s in zip(fused + fused2, singles + singles2):
        _assert_same_fit(f, s)
        np.testing.assert_array_equal(f.predict(X), s.predict(X))


def test_stacked_fits_warn_as_their_single_fits(raw_digits):
    # a stacked fit's ConvergenceWarning is the single fit's: emitted when the
    # search takes the fit, attributed to scikit-learn (so the filters of
    # scikit-learn's examples work), and absent with n_iter_no_change=np.inf
    X, y = raw_digits
    grid = {"mlp__alpha": [1e-4, 1e-2]}
    for patience, expected in ((10, 4), (np.inf, 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model_selection.GridSearchCV(
                _pipe(hidden_layer_sizes=(8,), max_iter=2,
                      n_iter_no_change=patience), grid, cv=2, refit=False).fit(X, y)
        found = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        assert len(found) == expected
        package = os.path.dirname(sknn.__file__)
        assert not [w.filename for w in found if w.filename.startswith(package)]
