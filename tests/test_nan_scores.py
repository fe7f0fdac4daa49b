"""NaN validation scores and training losses counted as scikit-learn counts
them (``_update_no_improvement_count``: a NaN compares False, so it restarts
the no-improvement count and is never the best), in the single fit
(``NoImprovementStopping``, ``RestoreBestWeights``, ``sknn._fitted``) and in
the stacked fit (``sknn._fused``), with scikit-learn's MLP as the oracle."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

import sknn._callbacks
import sknn._fused
from sknn import MLPRegressorTorch
from sknn._callbacks import NoImprovementStopping
from sknn._fused import prepare, train_stack
from sknn._training import MAX_SEED, torch_rng

NAN, INF = float("nan"), float("inf")

#: training losses and validation scores with NaNs (first, between, in a row)
#: and infinities, near-ties within tol among them
LOSSES = [NAN, 1.0, 0.99995, NAN, 0.5, INF, 0.49, NAN, NAN, 0.3, 0.3, -INF, 0.2]
SCORES = [NAN, 0.2, 0.20005, NAN, 0.5, -INF, 0.49, NAN, NAN, 0.6, 0.6, INF, 0.7]


def _sklearn_counts(values, early_stopping, tol):
    """scikit-learn's own count and best after each value (its MLP's
    ``_update_no_improvement_count``, fed the values as its scores or
    losses)."""
    mlp = MLPRegressor(tol=tol)
    mlp._no_improvement_count = 0
    if early_stopping:
        mlp.coefs_, mlp.intercepts_ = [], []
        mlp.validation_scores_, mlp.best_validation_score_ = [], -np.inf
        scores = iter(values)
        mlp._score = lambda X, y, sample_weight=None: next(scores)
    else:
        mlp.loss_curve_, mlp.best_loss_ = [], np.inf
    counts, bests = [], []
    for value in values:
        if not early_stopping:
            mlp.loss_curve_.append(value)
        mlp._update_no_improvement_count(early_stopping, None, None, None)
        counts.append(mlp._no_improvement_count)
        bests.append(mlp.best_validation_score_ if early_stopping
                     else mlp.best_loss_)
    return counts, bests


class _History(list):
    def __getitem__(self, key):
        if isinstance(key, tuple):
            return list.__getitem__(self, key[0])[key[1]]
        return list.__getitem__(self, key)


@pytest.mark.parametrize("monitor", ["train_loss", "valid_r2", "valid_acc"])
@pytest.mark.parametrize("tol", [1e-4, 0.0])
def test_no_improvement_stopping_counts_nan_as_sklearn(monitor, tol):
    early_stopping = monitor != "train_loss"
    values = SCORES if early_stopping else LOSSES
    stopping = NoImprovementStopping(monitor, tol=tol, n_iter_no_change=np.inf)
    stopping.initialize()
    net = SimpleNamespace(history=_History(), verbose=False)
    counts, bests = [], []
    for value in values:
        net.history.append({monitor: value})
        stopping.on_epoch_end(net)
        counts.append(stopping.no_improvement_count_)
        bests.append(stopping.best_)
    expected_counts, expected_bests = _sklearn_counts(values, early_stopping, tol)
    assert counts == expected_counts
    np.testing.assert_array_equal(bests, expected_bests)
    assert not np.isnan(bests).any()


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stacked_stopping_rule_counts_nan_as_sklearn(early_stopping):
    # sknn._fused's end-of-epoch rule, fed the same values
    values = SCORES if early_stopping else LOSSES
    key = "valid_r2" if early_stopping else "train_loss"
    est = MLPRegressorTorch(early_stopping=early_stopping, tol=1e-4,
                            n_iter_no_change=np.inf, max_iter=100)
    f = SimpleNamespace(member=SimpleNamespace(est=est, kind="continuous"),
                        best=-np.inf if early_stopping else np.inf,
                        best_score=-np.inf, count=0, best_state=None,
                        rows_history=[], stop_reason=None)
    model = SimpleNamespace(params=[torch.zeros(1, 2, 2)], state=lambda m: m)
    counts, bests = [], []
    for value in values:
        record = {"train_loss": 1.0, key: value}
        f.rows_history.append(record)
        assert not sknn._fused._end_of_epoch(f, 0, record, model, None)
        counts.append(f.count)
        bests.append(f.best)
    expected_counts, expected_bests = _sklearn_counts(values, early_stopping, 1e-4)
    assert counts == expected_counts
    np.testing.assert_array_equal(bests, expected_bests)


def test_nan_scores_never_stop_a_fit_that_sklearn_continues():
    # scores alternating with NaN: scikit-learn never counts two in a row
    stopping = NoImprovementStopping("valid_r2", tol=1e-4, n_iter_no_change=1)
    stopping.initialize()
    net = SimpleNamespace(history=_History(), verbose=False)
    stopped_at = None
    for epoch, value in enumerate([0.5, NAN] * 6, start=1):
        net.history.append({"valid_r2": value})
        try:
            stopping.on_epoch_end(net)
        except KeyboardInterrupt:  # how the callback stops training
            stopped_at = epoch
            break
    assert stopped_at is None
    assert stopping.stop_reason_ is None and stopping.best_ == 0.5


# --------------------------------------- fits, against scikit-learn's MLP
@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


def _scores(values):
    """A scorer that returns ``values`` one call after another."""
    calls = iter(values)
    return lambda *args, **kwargs: next(calls)


SETTINGS = {"hidden_layer_sizes": (6,), "max_iter": 12, "early_stopping": True,
            "n_iter_no_change": 2, "random_state": 0, "learning_rate_init": 0.01}


@pytest.mark.parametrize("values, n_iter, best", [
    # NaN first; a NaN between two epochs without improvement restarts the
    # count (scikit-learn stops at epoch 7, the NaN-as-no-improvement rule at 5)
    ([NAN, 0.1, 0.1, NAN, 0.1, 0.1, 0.1] + [0.3] * 5, 7, 0.1),
    # alternating: never two epochs without improvement in a row
    ([0.1, NAN] * 6, 12, 0.1),
    # all NaN: no best, the initial weights kept (scikit-learn's _best_coefs)
    ([NAN] * 12, 12, -np.inf),
], ids=["nan-first", "alternating", "all-nan"])
def test_nan_validation_scores_as_sklearn(diabetes, monkeypatch, values, n_iter,
                                          best):
    X, y = diabetes
    theirs = MLPRegressor(**SETTINGS)
    theirs._score = _scores(values)
    theirs.fit(X, y)
    est = MLPRegressorTorch(device="cpu", **SETTINGS)
    monkeypatch.setattr(sknn._callbacks, "weighted_r2", _scores(values))
    single = clone(est).fit(X, y)
    monkeypatch.setattr(sknn._fused, "_r2", _scores(values))
    (stacked, _), = train_stack([prepare(clone(est), X, y)])
    for fitted in (theirs, single, stacked):
        assert fitted.n_iter_ == n_iter
        np.testing.assert_array_equal(fitted.validation_scores_, values[:n_iter])
        assert fitted.best_validation_score_ == best
    for a, b in zip(stacked.coefs_ + stacked.intercepts_,
                    single.coefs_ + single.intercepts_):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    if best == -np.inf:
        seed = int(np.random.RandomState(0).randint(MAX_SEED))
        with torch_rng(seed, "cpu"):
            module = clone(est)._build_module(X.shape[1], 1)
        np.testing.assert_array_equal(single.coefs_[0],
                                      module.dense0.weight.detach().numpy().T)


def test_diverging_fit_with_early_stopping_as_sklearn():
    # scikit-learn's test_mlp_diverging_loss: the validation scores become
    # NaN, the fit does not raise, the best score is the best finite one and
    # its weights are kept. scikit-learn (float64) trains max_iter epochs of
    # NaN (each NaN restarts its count); sknn ends at the first epoch whose
    # loss and weights are not finite (NonFiniteStop), and its stacked fit
    # with it, so n_iter_ is compared between sknn's two paths only
    X, y = load_iris(return_X_y=True)
    settings = {"hidden_layer_sizes": 100, "activation": "identity",
                "solver": "sgd", "learning_rate_init": 1, "max_iter": 20,
                "early_stopping": True, "n_iter_no_change": 10,
                "random_state": 0}
    theirs = MLPRegressor(**settings).fit(X, y)
    est = MLPRegressorTorch(device="cpu", **settings)
    single = clone(est).fit(X, y)
    (stacked, _), = train_stack([prepare(clone(est), X, y)])
    assert not isinstance(stacked, Exception), stacked
    assert theirs.n_iter_ == 20
    assert single.n_iter_ == stacked.n_iter_ < 20
    for fitted in (theirs, single, stacked):
        scores = np.asarray(fitted.validation_scores_)
        assert np.isnan(scores[-1]) and isinstance(fitted.validation_scores_[-1],
                                                   float)
        assert fitted.best_validation_score_ == np.nanmax(scores) == scores[0]
        assert all(np.isfinite(c).all() for c in fitted.coefs_)
    np.testing.assert_array_equal(np.isnan(stacked.validation_scores_),
                                  np.isnan(single.validation_scores_))
    np.testing.assert_allclose(stacked.validation_scores_,
                               single.validation_scores_, rtol=1e-3)
    for a, b in zip(stacked.coefs_ + stacked.intercepts_,
                    single.coefs_ + single.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
