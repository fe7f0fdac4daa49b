"""The fused search: stacked fits equal single fits, and the search equals
scikit-learn's."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
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
