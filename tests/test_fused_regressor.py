"""The fused search with MLPRegressorTorch: stacked regressor fits equal their
single fits, and the search equals scikit-learn's."""

import numpy as np
import pytest
from searches import assert_same_search, both
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch, MLPRegressorTorch
from sknn._fused import fusion_key, prepare, train_stack


@pytest.fixture(scope="module")
def diabetes():
    """sklearn's diabetes, X and y standardised: (442, 10), y float."""
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


def _targets(y, outputs):
    """1-D y, or a second, nonlinear column beside it."""
    return y if outputs == 1 else np.column_stack([y, np.tanh(2 * y)])


def _stacked_and_single(X, y, params, sample_weight=None, **base):
    """The fits of ``params`` x 2 folds, trained as one stack and one by one."""
    base = MLPRegressorTorch(**{"hidden_layer_sizes": (12,), "max_iter": 5,
                                "device": "cpu", **base})
    members, singles = [], []
    for k, (train, _) in enumerate(KFold(2).split(X)):
        weight = None if sample_weight is None else sample_weight[train]
        for p in params:
            est = clone(base).set_params(random_state=k, **p)
            members.append(prepare(clone(est), X[train], y[train], weight))
            singles.append(est.fit(X[train], y[train], sample_weight=weight))
    assert len({fusion_key(m) for m in members}) == 1
    return [s for s, _ in train_stack(members)], singles


def _assert_same_fit(fused, single):
    assert not isinstance(fused, Exception), fused
    for a, b in zip(fused.coefs_ + fused.intercepts_,
                    single.coefs_ + single.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    for name in ("n_iter_", "t_", "n_outputs_", "out_activation_", "n_layers_",
                 "n_features_in_"):
        assert getattr(fused, name) == getattr(single, name), name
    np.testing.assert_allclose(fused.loss_curve_, single.loss_curve_, rtol=1e-5)
    assert fused.loss_ == fused.loss_curve_[-1]
    if single.early_stopping:
        assert fused.best_loss_ is None
        np.testing.assert_allclose(fused.validation_scores_,
                                   single.validation_scores_, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fused.best_validation_score_,
                                   single.best_validation_score_, rtol=1e-4,
                                   atol=1e-6)
    else:
        assert fused.validation_scores_ is None
        assert fused.best_validation_score_ is None
        np.testing.assert_allclose(fused.best_loss_, single.best_loss_, rtol=1e-5)
    # the records a regressor's fit keeps: loss, and val_loss and val_r2
    assert [sorted(r) for r in fused.history_] == [sorted(r) for r in single.history_]
    for f, s in zip(fused.history_, single.history_):
        for key in ("loss", "val_loss", "val_r2"):
            if key in s:
                np.testing.assert_allclose(f[key], s[key], rtol=1e-4, atol=1e-6)
    assert (fused.net_.optimizer_.param_groups[0]["lr"]
            == pytest.approx(single.net_.optimizer_.param_groups[0]["lr"]))


@pytest.mark.parametrize("base", [
    {},
    {"solver": "sgd", "learning_rate_init": 0.01},
    {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.1,
     "nesterovs_momentum": False},
    {"early_stopping": True, "batch_size": 50, "max_iter": 8},
    {"hidden_layer_sizes": (8, 6), "activation": "tanh", "batch_size": 64},
    {"loss": "poisson"},
], ids=["adam", "sgd", "sgd-invscaling", "early-stopping", "2-layers-tanh",
        "poisson"])
@pytest.mark.parametrize("outputs", [1, 2])
def test_stacked_regressor_fits_equal_single_fits(diabetes, base, outputs):
    X, y = diabetes
    y = _targets(y, outputs)
    if base.get("loss") == "poisson":
        y = np.abs(y)
    fused, singles = _stacked_and_single(
        X, y, [{"alpha": 1e-4}, {"alpha": 0.1, "learning_rate_init": 0.003}],
        **base)
    for f, s in zip(fused, singles):
        _assert_same_fit(f, s)
        assert f.predict(X).shape == s.predict(X).shape == y.shape
        np.testing.assert_allclose(f.predict(X), s.predict(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stacked_sample_weights_are_the_single_fits(diabetes, early_stopping):
    # the weighted mean loss, the L2 term over the mean weight, and the
    # weighted validation loss and R^2
    X, y = diabetes
    weight = np.random.RandomState(0).uniform(0.1, 3.0, len(X))
    fused, singles = _stacked_and_single(
        X, _targets(y, 2), [{"alpha": 1e-4}, {"alpha": 1.0}], sample_weight=weight,
        early_stopping=early_stopping, batch_size=50, max_iter=6)
    for f, s in zip(fused, singles):
        _assert_same_fit(f, s)


def test_each_stacked_regressor_stops_where_its_single_fit_stops(diabetes):
    # early stopping on each fit's own validation R^2, the training loss's
    # tol, and the adaptive rate's divisions end the fits at different epochs
    X, y = diabetes
    fused, singles = _stacked_and_single(
        X, y, [{"n_iter_no_change": 1}, {"n_iter_no_change": 4}],
        early_stopping=True, max_iter=60, batch_size=40, tol=1e-3,
        learning_rate_init=0.01)
    fused2, singles2 = _stacked_and_single(
        X, y, [{"tol": 1e-2}, {"tol": 1e-3}], max_iter=60, n_iter_no_change=2,
        learning_rate_init=0.01)
    fused3, singles3 = _stacked_and_single(
        X, y, [{"learning_rate_init": 0.05}, {"learning_rate_init": 0.01}],
        solver="sgd", learning_rate="adaptive", tol=1e-2, n_iter_no_change=1,
        max_iter=60)
    everything = singles + singles2 + singles3
    stops = [s.n_iter_ for s in everything]
    assert len(set(stops)) > 3 and max(stops) < 60
    for f, s in zip(fused + fused2 + fused3, everything):
        _assert_same_fit(f, s)


def test_a_nan_validation_r2_is_never_the_best(diabetes, monkeypatch):
    # scikit-learn's MLPRegressor scores non-finite predictions NaN; skorch's
    # scorer never takes NaN as its best, and the stacked fit follows it: the
    # same best epoch, whose weights are restored
    import sknn._callbacks
    import sknn._fused

    X, y = diabetes
    scores = [np.nan, -1.0, -0.2, -0.5]

    def sequence():
        calls = []

        def score(*args):
            calls.append(1)
            return scores[len(calls) - 1]
        return score

    monkeypatch.setattr(sknn._fused, "_r2", sequence())
    monkeypatch.setattr(sknn._callbacks, "weighted_r2", sequence())
    est = MLPRegressorTorch(hidden_layer_sizes=(6,), max_iter=4, device="cpu",
                            early_stopping=True, random_state=0,
                            learning_rate_init=0.01)
    fused = train_stack([prepare(clone(est), X, y)])[0][0]
    single = clone(est).fit(X, y)
    flags = [[r["valid_r2_best"] for r in e.net_.history] for e in (fused, single)]
    assert flags[0] == flags[1] == [False, True, True, False]
    # the best finite score, as scikit-learn's best_validation_score_
    assert fused.best_validation_score_ == single.best_validation_score_ == -0.2
    _assert_same_fit(fused, single)
    final = clone(est).set_params(early_stopping=False).fit(X, y)
    assert not np.allclose(fused.coefs_[0], final.coefs_[0], atol=1e-5, rtol=0)


def test_regressors_and_classifiers_never_share_a_stack(diabetes):
    X, y = diabetes
    settings = {"hidden_layer_sizes": (8,), "device": "cpu"}
    regressor = prepare(MLPRegressorTorch(**settings), X, (y > 0).astype(float))
    classifier = prepare(MLPClassifierTorch(**settings), X, (y > 0).astype(int))
    assert regressor.est.n_outputs_ == classifier.est.n_outputs_ == 1
    assert fusion_key(regressor) is not None and fusion_key(classifier) is not None
    assert fusion_key(regressor) != fusion_key(classifier)
    poisson = prepare(MLPRegressorTorch(loss="poisson", **settings), X, np.abs(y))
    assert fusion_key(poisson) != fusion_key(prepare(
        MLPRegressorTorch(**settings), X, np.abs(y)))


@pytest.mark.parametrize("setting", [
    {"solver": "lbfgs"}, {"dropout": 0.2}, {"batch_norm": True},
    {"precision": "bfloat16"}, {"callbacks": [("print_log", None)]},
])
def test_what_the_regressor_cannot_stack_takes_the_per_fit_path(diabetes, setting):
    X, y = diabetes
    member = prepare(MLPRegressorTorch(hidden_layer_sizes=(8,), device="cpu",
                                       **setting), X, y)
    assert fusion_key(member) is None


# ------------------------------------------------------------------ the search
def _pipe(**params):
    return Pipeline([("scale", StandardScaler()), ("mlp", MLPRegressorTorch(
        **{"hidden_layer_sizes": (16,), "max_iter": 6, "random_state": 0,
           "device": "cpu", "batch_size": 64, **params}))])


@pytest.fixture(scope="module")
def raw_diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y / 100.0


@pytest.mark.parametrize("case", [
    ({}, {"mlp__hidden_layer_sizes": [(16,), (8, 8)], "mlp__alpha": [1e-4, 1.0],
          "scale__with_mean": [True, False]}, 1, 16, 2),
    ({"solver": "sgd", "learning_rate_init": 0.01},
     {"mlp__learning_rate": ["constant", "invscaling", "adaptive"],
      "mlp__momentum": [0.9, 0.0]}, 1, 12, 1),
    ({"early_stopping": True, "max_iter": 12, "n_iter_no_change": 2,
      "learning_rate_init": 0.01},
     {"mlp__alpha": [1e-4, 1.0], "mlp__validation_fraction": [0.1, 0.2]}, 1, 8, 1),
    ({}, {"mlp__alpha": [1e-4, 1.0], "mlp__learning_rate_init": [1e-3, 1e-2]},
     2, 8, 1),
], ids=["adam-shapes", "sgd-schedules", "early-stopping", "multi-output"])
def test_fused_regressor_search_equals_sklearns(raw_diabetes, counted, capsys, case):
    base, grid, outputs, n_fits, n_stacks = case
    X, y = raw_diabetes
    y = _targets(y, outputs)
    ours, theirs = both("GridSearchCV", _pipe(**base), grid, X, y, cv=2,
                         verbose=1, return_train_score=True)
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert ours.best_params_ == theirs.best_params_
    # every (candidate, fold) fit was trained in a stack, none one by one
    assert counted == {"stacked": n_fits, "single": 0}
    out = capsys.readouterr().out
    assert f"[sknn] {n_fits} fits in {n_stacks} stacks, 0 fits one by one" in out
    assert ours.predict(X).shape == y.shape
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-5,
                               atol=1e-5)


def test_fused_regressor_randomized_search_equals_sklearns(diabetes, counted):
    X, y = diabetes
    dist = {"alpha": [1e-5, 1e-3, 1e-1, 1.0], "learning_rate_init": [1e-3, 3e-3]}
    est = MLPRegressorTorch(hidden_layer_sizes=(12,), max_iter=4, random_state=1,
                            device="cpu", solver="sgd", learning_rate_init=0.01)
    ours, theirs = both("RandomizedSearchCV", est, dist, X, y, n_iter=3, cv=3,
                         random_state=0, scoring=["r2", "neg_mean_squared_error"],
                         refit="neg_mean_squared_error")
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 9, "single": 0}
    assert isinstance(ours.best_estimator_, MLPRegressorTorch)


def test_regressor_fits_that_cannot_stack_take_sklearns_path(raw_diabetes, counted):
    # L-BFGS and dropout fits one by one, and a loss the data refuses (Poisson
    # on negative y) fails as its single fit does, scored as error_score
    X, y = raw_diabetes
    y = y - y.mean()
    grid = [{"mlp__solver": ["lbfgs"], "mlp__max_iter": [10]},
            {"mlp__solver": ["adam"], "mlp__dropout": [0.0, 0.2]},
            {"mlp__loss": ["poisson"]}]
    with pytest.warns(FitFailedWarning, match="fits failed"), \
            pytest.warns(UserWarning, match="test scores are non-finite"):
        ours, theirs = both("GridSearchCV", _pipe(hidden_layer_sizes=(8,)), grid,
                             X, y, cv=2, error_score=np.nan)
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 2, "single": 6}
    assert np.isnan(ours.cv_results_["mean_test_score"][-1])
