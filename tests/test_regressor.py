"""MLPRegressorTorch: scikit-learn's MLPRegressor contract, its loss computed by
hand, its accuracy against scikit-learn's, and the sknn extras."""

import inspect
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import xlogy
from sklearn.datasets import make_friedman1, make_regression
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.utils import check_random_state
from skorch import NeuralNetClassifier, NeuralNetRegressor

from sknn import MLPClassifierTorch, MLPRegressorTorch


@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(n_samples=400, noise=0.5, random_state=0)
    y = (y - y.mean()) / y.std()
    return train_test_split(X, y, random_state=0)


@pytest.fixture(scope="module")
def small():
    X, y = make_regression(n_samples=60, n_features=4, n_targets=2, noise=0.5,
                           random_state=0)
    return X, y / y.std(axis=0)


def _reg(**kwargs):
    kwargs.setdefault("hidden_layer_sizes", (8,))
    kwargs.setdefault("random_state", 0)
    return MLPRegressorTorch(device="cpu", **kwargs)


# ------------------------------------------------------------------ contract
def test_signature_is_sklearns_then_the_torch_extras():
    ours = inspect.signature(MLPRegressorTorch).parameters
    theirs = inspect.signature(MLPRegressor).parameters
    names = list(ours)
    # sklearn's parameters first, in its order, with its defaults and kinds
    assert names[:len(theirs)] == list(theirs)
    for name, param in theirs.items():
        assert ours[name].default == param.default, name
        assert ours[name].kind == param.kind, name
    extras = names[len(theirs):]
    assert extras == ["dropout", "batch_norm", "weight_init", "device",
                      "precision", "callbacks", "progress_bar"]
    assert all(ours[n].kind is inspect.Parameter.KEYWORD_ONLY for n in extras)
    # the classifier's extras but class_weight, with the same defaults
    clf = inspect.signature(MLPClassifierTorch).parameters
    assert all(ours[n].default == clf[n].default for n in extras)
    for method in ("fit", "partial_fit"):
        assert (list(inspect.signature(getattr(MLPRegressorTorch, method)).parameters)
                == list(inspect.signature(getattr(MLPRegressor, method)).parameters))


def test_fitted_attributes_mirror_sklearn(small):
    X, y = small
    ours = _reg(max_iter=5).fit(X, y)
    theirs = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    for name in ("coefs_", "intercepts_", "loss_", "best_loss_", "loss_curve_",
                 "validation_scores_", "best_validation_score_", "n_iter_", "t_",
                 "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert hasattr(ours, name), name
        theirs_type = type(getattr(theirs, name))
        # numpy's float64 is a float
        expected = float if issubclass(theirs_type, float) else theirs_type
        assert isinstance(getattr(ours, name), expected), name
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert (ours.n_iter_, ours.t_, ours.n_layers_, ours.n_outputs_) == (
        theirs.n_iter_, theirs.t_, theirs.n_layers_, theirs.n_outputs_)
    assert ours.out_activation_ == theirs.out_activation_ == "identity"
    assert len(ours.loss_curve_) == 5 and ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    # the net is skorch's regressor, not its classifier
    assert isinstance(ours.net_, NeuralNetRegressor)
    assert not isinstance(ours.net_, NeuralNetClassifier)
    from sklearn.base import is_regressor

    assert is_regressor(ours) and not hasattr(ours, "classes_")
    assert not hasattr(ours, "predict_proba")
    assert [set(r) for r in ours.history_] == [{"epoch", "loss", "duration"}] * 5


def test_1d_and_multioutput_shapes(small):
    X, y = small
    one = _reg(max_iter=3).fit(X, y[:, 0])
    assert one.predict(X).shape == (len(X),) and one.n_outputs_ == 1
    two = _reg(max_iter=3).fit(X, y)
    assert two.predict(X).shape == (len(X), 2) and two.n_outputs_ == 2
    assert two.coefs_[-1].shape == (8, 2)
    # a column vector is handled as scikit-learn handles one
    with pytest.warns(DataConversionWarning):
        column = _reg(max_iter=3).fit(X, y[:, :1])
    assert column.predict(X).shape == (len(X),)
    assert_allclose(column.predict(X), one.predict(X), rtol=1e-6)
    # float32 X gives float32 predictions and weights, as scikit-learn's
    single = _reg(max_iter=3).fit(X.astype(np.float32), y[:, 0])
    assert single.predict(X.astype(np.float32)).dtype == np.float32
    assert single.coefs_[0].dtype == np.float32
    assert one.predict(X).dtype == np.float64


# ------------------------------------------------------------ the loss by hand
def _forward(est, X):
    a = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W.astype(np.float64) + b
        if i < len(est.coefs_) - 1:
            a = np.maximum(a, 0)
    return a


@pytest.mark.parametrize("weighted", [False, True])
def test_first_loss_is_sklearns_formula(small, weighted):
    """One full-batch epoch with a learning rate too small to move the weights:
    loss_curve_[0] is scikit-learn's squared_loss on the initial weights, the
    half squared error averaged over samples and then over the two outputs,
    plus alpha / (2 * sum of weights) * ||W||^2."""
    X, y = small
    w = np.linspace(0.5, 2.0, len(X)) if weighted else None
    alpha = 0.5
    est = _reg(solver="sgd", learning_rate_init=1e-12, momentum=0.0, alpha=alpha,
               max_iter=1, shuffle=False).fit(X, y, sample_weight=w)
    pred = _forward(est, X)
    data = 0.5 * np.average((y - pred) ** 2, weights=w, axis=0).mean()
    penalty = 0.5 * alpha * sum((c.astype(np.float64) ** 2).sum()
                                for c in est.coefs_)
    penalty /= len(X) if w is None else w.sum()
    assert_allclose(est.loss_curve_[0], data + penalty, rtol=1e-5)
    # the identical computation of scikit-learn's own function agrees
    from sklearn.neural_network._base import squared_loss

    assert_allclose(squared_loss(y, pred, w) + penalty, data + penalty)
    # and the predictions are that forward pass
    assert_allclose(est.predict(X), pred, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_steps_are_sklearns_with_several_outputs(small, solver):
    """From the same weights, three epochs of full-batch SGD or Adam on two
    outputs with a strong L2 term reach scikit-learn's weights: the gradient
    is that of the squared error summed over the outputs (scikit-learn's),
    while the loss is reported averaged over them."""
    X, y = small
    kwargs = dict(hidden_layer_sizes=(8,), solver=solver, momentum=0.0, alpha=0.1,
                  shuffle=False, warm_start=True, random_state=0)
    ours = MLPRegressorTorch(learning_rate_init=1e-12, max_iter=1, device="cpu",
                             **kwargs).fit(X, y)
    start = [w.astype(np.float64) for w in ours.coefs_ + ours.intercepts_]
    ours.set_params(learning_rate_init=0.05, max_iter=3).fit(X, y)
    theirs = MLPRegressor(learning_rate_init=0.05, max_iter=3, **kwargs)
    theirs.fit(X[:5], y[:5])  # then the same starting weights as ours
    theirs.coefs_ = [w.copy() for w in start[:2]]
    theirs.intercepts_ = [b.copy() for b in start[2:]]
    theirs.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_,
                    theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the reported losses agree (sknn adds the L2 term of the epoch's end
    # weights, scikit-learn of its start: 1e-3 apart at alpha=0.1)
    assert_allclose(ours.loss_curve_[-3:], theirs.loss_curve_[-3:], rtol=2e-3)


def test_poisson_loss_and_predictions():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(80, 3))
    y = rng.poisson(np.exp(X @ [1.0, -0.5, 0.3]))
    est = _reg(loss="poisson", solver="sgd", learning_rate_init=1e-12,
               momentum=0.0, alpha=0.0, max_iter=1, shuffle=False).fit(X, y)
    assert est.out_activation_ == "exp"
    mu = np.exp(_forward(est, X)).ravel()
    # scikit-learn's poisson_loss
    expected = np.average(xlogy(y, y / mu) - y + mu)
    assert_allclose(est.loss_curve_[0], expected, rtol=1e-5)
    assert_allclose(est.predict(X), mu, rtol=1e-5)
    fitted = _reg(loss="poisson", solver="lbfgs", max_iter=200).fit(X, y)
    assert (fitted.predict(X) > 0).all()
    with pytest.raises(ValueError, match="negative"):
        _reg(loss="poisson").fit(X, y - 3.0)


# ---------------------------------------------------------- accuracy by effect
@pytest.mark.parametrize("solver, kwargs, margin", [
    ("adam", {"max_iter": 100, "learning_rate_init": 0.01}, 0.05),
    ("lbfgs", {"max_iter": 200}, 0.05),
])
def test_r2_matches_sklearn(friedman, solver, kwargs, margin):
    X_train, X_test, y_train, y_test = friedman

    def median_r2(cls, **extra):
        scores = [cls(hidden_layer_sizes=(32,), solver=solver, random_state=seed,
                      **kwargs, **extra).fit(X_train, y_train).score(X_test, y_test)
                  for seed in range(3)]
        return float(np.median(scores))

    ours = median_r2(MLPRegressorTorch, device="cpu")
    theirs = median_r2(MLPRegressor)
    assert theirs > 0.6  # the problem is learnable at these settings
    assert ours >= theirs - margin, (ours, theirs)


# ------------------------------------------------------ incremental training
def test_partial_fit_continues_and_counts(small):
    X, y = small
    est = _reg(solver="sgd", learning_rate_init=0.05)
    losses = []
    for _ in range(5):
        est.partial_fit(X, y[:, 0])
        losses.append(est.loss_)
    # scikit-learn's counts: n_iter_ is the last call's epoch, t_ accumulates
    assert est.n_iter_ == 1 and est.t_ == 5 * len(X)
    assert losses[-1] < losses[0]
    # the same epochs as one fit (a single full batch: no shuffling)
    fit = _reg(solver="sgd", learning_rate_init=0.05, max_iter=5).fit(X, y[:, 0])
    assert_allclose(est.predict(X), fit.predict(X), rtol=1e-6)
    assert not hasattr(_reg(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="2 output"):
        est.partial_fit(X, y)


def test_warm_start_continues_from_the_weights(small):
    X, y = small
    est = _reg(solver="adam", learning_rate_init=0.01, max_iter=20,
               warm_start=True).fit(X, y)
    first = est.loss_curve_[-1]
    est.fit(X, y)
    fresh = _reg(solver="adam", learning_rate_init=0.01, max_iter=20).fit(X, y)
    # the second fit starts where the first ended, not from new weights
    assert est.loss_curve_[20] < fresh.loss_curve_[0]
    assert abs(est.loss_curve_[20] - first) < 0.5 * abs(fresh.loss_curve_[0] - first)
    assert len(est.loss_curve_) == 40


def test_early_stopping_scores_are_r2_of_the_held_out_split(friedman):
    X, y = friedman[0], friedman[2]
    est = _reg(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
               learning_rate_init=0.01, random_state=3).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    # the split scikit-learn makes: the seed, then train_test_split, from one
    # RandomState (not stratified for a regressor)
    rs = check_random_state(3)
    rs.randint(np.iinfo(np.int32).max)
    _, valid = train_test_split(np.arange(len(X)), random_state=rs, test_size=0.1)
    # the best epoch's weights are restored: their R^2 is the best score
    assert_allclose(r2_score(y[valid], est.predict(X[valid])),
                    est.best_validation_score_, rtol=1e-4)
    assert {"val_loss", "val_r2"} <= set(est.history_[-1])
    assert [r["val_r2"] for r in est.history_] == pytest.approx(est.validation_scores_)


def test_sample_weight_zero_is_leaving_the_sample_out(small):
    X, y = small
    w = np.ones(len(X))
    w[::3] = 0
    kwargs = dict(solver="sgd", learning_rate_init=0.05, max_iter=10, shuffle=False)
    weighted = _reg(**kwargs).fit(X, y, sample_weight=w)
    subset = _reg(**kwargs).fit(X[w > 0], y[w > 0])
    assert_allclose(weighted.loss_curve_, subset.loss_curve_, rtol=1e-5)
    assert_allclose(weighted.predict(X), subset.predict(X), rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------- sknn extras
def test_dropout_and_batch_norm_change_the_network(small):
    X, y = small
    plain = _reg(max_iter=5).fit(X, y)
    dropped = _reg(max_iter=5, dropout=0.5).fit(X, y)
    normed = _reg(max_iter=5, batch_norm=True).fit(X, y)
    assert not np.allclose(plain.predict(X), dropped.predict(X))
    assert any("BatchNorm" in type(m).__name__ for m in normed.net_.module_.modules())
    # dropout is off at predict time: predictions are deterministic
    assert_allclose(dropped.predict(X), dropped.predict(X))


def test_skorch_callbacks_and_the_validation_loss(friedman):
    from skorch.callbacks import EarlyStopping

    X, y = friedman[0], friedman[2]
    est = _reg(early_stopping=True, max_iter=200, learning_rate_init=0.05,
               n_iter_no_change=np.inf,
               callbacks=[EarlyStopping(monitor="valid_loss", patience=2)]).fit(X, y)
    # skorch's EarlyStopping on the validation loss ended training
    assert est.n_iter_ < 200
    losses = [r["val_loss"] for r in est.history_]
    assert min(losses[:-2]) <= min(losses[-2:])
    assert "valid_r2" in est.net_.history[-1]


def test_bfloat16_precision_trains(small):
    X, y = small
    est = _reg(max_iter=30, learning_rate_init=0.01, precision="bfloat16").fit(X, y)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.predict(X).dtype == np.float64


def test_verbose_prints_the_validation_r2(friedman, capsys):
    X, y = friedman[0], friedman[2]
    _reg(max_iter=2, early_stopping=True, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 2, loss = " in out and "Validation score: " in out


def test_bad_targets_give_sklearn_errors(small):
    X, y = small
    with pytest.raises(ValueError):
        _reg().fit(X, np.array(["a", "b"] * 30))
    with pytest.raises(ValueError, match="NaN|infinity"):
        _reg().fit(X, np.r_[np.nan, y[1:, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="Unknown label type|continuous"):
            MLPClassifierTorch(device="cpu").fit(X, y[:, 0])


def test_unweighted_one_output_loss_is_the_per_sample_mean_to_the_bit():
    # sknn._losses.unweighted_mean, the short loss of an unweighted
    # one-output fit, is the per-sample losses' mean: value and gradient
    import torch

    from sknn._losses import HalfSquaredError, unweighted_mean

    gen = torch.Generator().manual_seed(0)
    criterion = HalfSquaredError()
    for n in (1, 7, 200, 443, 2999):
        y = 10 * torch.randn(n, 1, generator=gen)
        y_pred = (3 * torch.randn(n, 1, generator=gen)).requires_grad_()
        short = unweighted_mean(criterion, y_pred, y)
        long = criterion(y_pred, y).mean()
        assert short.item() == long.item()
        (g_short,) = torch.autograd.grad(short, y_pred)
        (g_long,) = torch.autograd.grad(long, y_pred)
        assert torch.equal(g_short, g_long)
    # several outputs: the per-sample path
    y = torch.randn(5, 2, generator=gen)
    assert unweighted_mean(criterion, y.clone(), y) is None
