"""MLPClassifierTorch: parity with sklearn's MLPClassifier, targets, training
options, reproducibility and the user flows of the issue."""

import io
import os
import statistics
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import (
    load_iris,
    make_classification,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from skorch.callbacks import Callback

import sknn
from sknn import MLPClassifierTorch


def fast(**params):
    params = {"device": "cpu", "random_state": 0, **params}
    return MLPClassifierTorch(**params)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# --------------------------------------------------------------- parity ----
def test_digits_accuracy_matches_sklearn_across_seeds(digits):
    X, y = digits
    gaps = []
    for seed in range(3):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=seed)
        params = dict(hidden_layer_sizes=(100,), max_iter=30, random_state=seed)
        ours = MLPClassifierTorch(device="cpu", **params).fit(X_tr, y_tr)
        theirs = MLPClassifier(**params).fit(X_tr, y_tr)
        gaps.append(ours.score(X_te, y_te) - theirs.score(X_te, y_te))
    assert abs(statistics.median(gaps)) <= 0.02, gaps


def test_fitted_attributes_mirror_sklearn(iris):
    X, y = iris
    params = dict(hidden_layer_sizes=(7, 5), max_iter=5, random_state=0)
    ours = MLPClassifierTorch(device="cpu", **params).fit(X, y)
    theirs = MLPClassifier(**params).fit(X, y)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_iter_", "t_",
                 "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert len(ours.loss_curve_) == 5 and ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    assert [r["epoch"] for r in ours.history_] == [1, 2, 3, 4, 5]
    assert set(ours.history_[0]) == {"epoch", "loss", "accuracy", "duration"}
    assert ours.net_.module_ is not None and ours.device_ == "cpu"


def test_same_parameter_names_and_defaults_as_sklearn():
    ours = MLPClassifierTorch().get_params()
    theirs = MLPClassifier().get_params()
    for name, value in theirs.items():
        assert name in ours, name
        assert ours[name] == value, name


@pytest.mark.slow
def test_mnist_784_512_10_reaches_095(mnist_dir):
    from sknn.datasets import load_mnist

    _, (X, y) = load_mnist(mnist_dir)
    X = X.reshape(len(X), -1).astype(np.float32) / 255.0
    scores = []
    for seed in range(3):
        clf = fast(hidden_layer_sizes=(512,), max_iter=10, random_state=seed)
        clf.fit(X[:8000], y[:8000])
        scores.append(clf.score(X[8000:], y[8000:]))
    assert statistics.median(scores) >= 0.95, scores


# -------------------------------------------------------------- user flow ---
def test_pipeline_grid_search_and_joblib_round_trip(digits, tmp_path):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), fast(max_iter=30, learning_rate_init=0.01))
    grid = GridSearchCV(
        pipe, {"mlpclassifiertorch__hidden_layer_sizes": [(16,), (32, 16)]},
        cv=3, n_jobs=2)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85
    path = tmp_path / "model.joblib"
    joblib.dump(grid.best_estimator_, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), grid.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), grid.predict_proba(X))


@pytest.mark.parametrize("labels", [
    np.array(["setosa", "versicolor", "virginica"]),
    np.array([10, 20, 30]),
    np.array([1.0, 2.0, 3.0]),
])
def test_labels_of_any_type_come_back_as_labels(iris, labels):
    X, y = iris
    y_labels = labels[y]
    clf = fast(max_iter=60, learning_rate_init=0.01).fit(X, y_labels)
    assert clf.classes_.tolist() == sorted(labels.tolist())
    pred = clf.predict(X)
    assert pred.dtype == y_labels.dtype
    assert np.mean(pred == y_labels) > 0.9


def test_bool_labels_train_as_binary(iris):
    X, y = iris
    y_bool = y == 0
    clf = fast(max_iter=30, learning_rate_init=0.01).fit(X, y_bool)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert clf.predict(X).dtype == bool
    assert clf.score(X, y_bool) > 0.95
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_label_binarizer_onehot_round_trip_in_pipeline(iris):
    X, y = iris
    names = np.array(["a", "b", "c"])[y]
    lb = LabelBinarizer()
    Y = lb.fit_transform(names)
    pipe = make_pipeline(StandardScaler(), fast(max_iter=60, learning_rate_init=0.01))
    pipe.fit(X, Y)
    clf = pipe[-1]
    assert clf.out_activation_ == "softmax"  # one-hot rows: multiclass softmax
    pred = pipe.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    assert np.all(pred.sum(axis=1) == 1)
    assert np.mean(lb.inverse_transform(pred) == names) > 0.9
    np.testing.assert_allclose(pipe.predict_proba(X).sum(axis=1), 1, rtol=1e-5)


def test_two_class_label_binarizer_column(iris):
    X, y = iris
    names = np.where(y == 0, "setosa", "other")
    lb = LabelBinarizer()
    Y = lb.fit_transform(names)
    assert Y.shape == (len(y), 1)
    with pytest.warns(DataConversionWarning):
        clf = fast(max_iter=30, learning_rate_init=0.01).fit(X, Y)
    pred = clf.predict(X)
    assert pred.ndim == 1
    assert np.mean(lb.inverse_transform(pred) == names) > 0.95


def test_multilabel_indicator_uses_sigmoids():
    X, Y = make_multilabel_classification(n_samples=200, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = fast(max_iter=80, learning_rate_init=0.01).fit(X, Y)
    theirs = MLPClassifier(max_iter=80, learning_rate_init=0.01, random_state=0)
    theirs.fit(X, Y)
    assert clf.out_activation_ == theirs.out_activation_ == "logistic"
    assert clf.n_outputs_ == theirs.n_outputs_ == 4
    pred = clf.predict(X)
    assert pred.shape == Y.shape
    assert np.mean(pred == Y) > 0.8
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and np.all((proba >= 0) & (proba <= 1))


def test_dataframe_input_records_feature_names(iris):
    X, y = iris
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = fast(max_iter=3).fit(df, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert clf.predict(df).shape == (len(y),)


# ---------------------------------------------------------------- training --
def test_random_state_makes_fits_reproducible(iris):
    X, y = iris
    a = fast(max_iter=5, random_state=3, dropout=0.2).fit(X, y)
    b = fast(max_iter=5, random_state=3, dropout=0.2).fit(X, y)
    c = fast(max_iter=5, random_state=4, dropout=0.2).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_fit_leaves_global_rngs_as_they_were(iris):
    X, y = iris
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    fast(max_iter=3, random_state=0, dropout=0.5).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_tol_stops_like_sklearn(iris):
    X, y = iris
    ours = fast(max_iter=200, tol=1e9).fit(X, y)
    theirs = MLPClassifier(max_iter=200, tol=1e9, random_state=0).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 12  # first epoch, then 11 flat
    stopping = dict(ours.net_.callbacks_)["sklearn_stopping"]
    assert "did not improve" in stopping.stop_reason_


def test_convergence_warning_at_max_iter(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
        fast(max_iter=3).fit(X, y)


def test_early_stopping_restores_best_validation_weights(digits):
    class BestWeights(Callback):
        """Copies the weights after each epoch that set a new best valid_acc."""

        def on_epoch_end(self, net, **kwargs):
            if net.history[-1, "valid_acc_best"]:
                self.state_ = {k: v.clone()
                               for k, v in net.module_.state_dict().items()}

    X, y = digits
    clf = fast(early_stopping=True, max_iter=100, n_iter_no_change=3,
               learning_rate_init=0.01, callbacks=[BestWeights()])
    clf.fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 100
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert {"val_loss", "val_accuracy"} <= set(clf.history_[-1])
    best = max(range(clf.n_iter_), key=lambda i: clf.validation_scores_[i])
    assert best < clf.n_iter_ - 1  # stopped after epochs worse than the best
    saved = dict(clf.net_.callbacks_)["BestWeights"].state_
    for name, tensor in clf.net_.module_.state_dict().items():
        torch.testing.assert_close(tensor, saved[name])
    # the copy is freed once the module holds the best weights again
    assert dict(clf.net_.callbacks_)["sklearn_best_weights"].best_state_ is None


def test_validation_set_too_small_is_explained(iris):
    X, y = iris
    clf = fast(early_stopping=True, validation_fraction=0.001)
    with pytest.raises(ValueError, match="validation set is too small"):
        clf.fit(X[::5], y[::5])


def test_warm_start_continues_training(iris):
    X, y = iris
    clf = fast(max_iter=4, warm_start=True)
    clf.fit(X, y)
    first = [w.copy() for w in clf.coefs_]
    net = clf.net_
    clf.fit(X, y)
    assert clf.net_ is net
    assert len(clf.loss_curve_) == 8 and clf.n_iter_ == 4
    assert not np.array_equal(first[0], clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])


def test_partial_fit_runs_one_epoch_per_call(iris):
    X, y = iris
    clf = fast()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2]
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 31
    assert clf.t_ == 50 + 30 * 150
    assert clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="`y` has classes not in"):
        clf.partial_fit(X[:3], [0, 1, 7])


def test_partial_fit_refuses_early_stopping(iris):
    X, y = iris
    with pytest.raises(ValueError, match="partial_fit does not support"):
        fast(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("solver, extra", [
    ("sgd", {"learning_rate": "constant"}),
    ("sgd", {"learning_rate": "invscaling", "learning_rate_init": 1.0}),
    ("sgd", {"learning_rate": "adaptive"}),
    ("sgd", {"nesterovs_momentum": False}),
    ("sgd", {"momentum": 0.0}),
    ("adam", {}),
    ("lbfgs", {}),
])
def test_every_solver_learns(iris, solver, extra):
    X, y = iris
    clf = fast(solver=solver, max_iter=150, **{"learning_rate_init": 0.05, **extra})
    clf.fit(X, y)
    assert clf.score(X, y) > 0.9


def test_invscaling_sets_sklearn_learning_rate(iris):
    X, y = iris
    clf = fast(solver="sgd", learning_rate="invscaling", max_iter=3,
               learning_rate_init=0.1, power_t=0.5).fit(X, y)
    lr = clf.net_.optimizer_.param_groups[0]["lr"]
    assert lr == pytest.approx(0.1 / (3 * 150 + 1) ** 0.5)


def test_adaptive_divides_learning_rate_by_five(iris):
    X, y = iris
    clf = fast(solver="sgd", learning_rate="adaptive", tol=1e9,
               n_iter_no_change=2, max_iter=10, learning_rate_init=0.1)
    clf.fit(X, y)
    # no epoch improves by 1e9: every third epoch divides the rate by 5
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1 / 5 ** 3)


def test_lbfgs_sample_weight_approximates_repetition():
    """Full-batch L-BFGS: integer weights act like repeated rows.

    sklearn's check_sample_weight_equivalence_on_dense_data asks for agreement
    to rtol=1e-7, which float32 training that stops at ``tol`` does not reach;
    the two fits agree to about 2e-2 in probability.
    """
    X, y = make_classification(n_samples=60, n_features=4, n_informative=3,
                               n_redundant=0, n_classes=3, random_state=0)
    weights = np.random.RandomState(0).randint(0, 3, size=len(y))
    repeated = np.repeat(np.arange(len(y)), weights)
    # a strong L2 term makes the optimum unique enough to compare
    params = dict(solver="lbfgs", max_iter=500, tol=1e-7, alpha=1.0,
                  hidden_layer_sizes=(8,))
    weighted = fast(**params).fit(X, y, sample_weight=weights)
    expanded = fast(**params).fit(X[repeated], y[repeated])
    unweighted = fast(**params).fit(X, y)
    gap = np.abs(weighted.predict_proba(X) - expanded.predict_proba(X)).max()
    ignored = np.abs(unweighted.predict_proba(X) - expanded.predict_proba(X)).max()
    # float32 L-BFGS stops within ~0.02 of the repeated fit; ignoring the
    # weights would be off by far more (0.77 here)
    assert gap < 0.04 and ignored > 0.2, (gap, ignored)


def test_class_weight_balanced_helps_the_minority():
    X, y = make_classification(n_samples=400, weights=[0.9, 0.1], flip_y=0,
                               class_sep=0.6, random_state=0)
    plain = fast(max_iter=40).fit(X, y)
    balanced = fast(max_iter=40, class_weight="balanced").fit(X, y)
    recall = [np.mean(m.predict(X)[y == 1] == 1) for m in (plain, balanced)]
    assert recall[1] > recall[0]


def test_sample_weight_zero_removes_samples(iris):
    X, y = iris
    weights = np.where(y == 2, 0.0, 1.0)
    clf = fast(max_iter=50).fit(X, y, sample_weight=weights)
    assert np.mean(clf.predict(X[y == 2]) == 2) < 0.5


@pytest.mark.parametrize("weight_init", [
    "auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "truncated_normal", "torch"])
def test_weight_inits_train(iris, weight_init):
    X, y = iris
    clf = fast(max_iter=40, learning_rate_init=0.01, weight_init=weight_init)
    clf.fit(X, y)
    assert clf.score(X, y) > 0.85


def test_dropout_and_batch_norm_apply_in_training_only(iris):
    X, y = iris
    clf = fast(hidden_layer_sizes=(32, 16), dropout=0.5, batch_norm=True,
               max_iter=30, learning_rate_init=0.01).fit(X, y)
    kinds = [type(m).__name__ for m in clf.net_.module_]
    assert kinds.count("Dropout") == 2 and kinds.count("BatchNorm1d") == 2
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    assert clf.n_layers_ == 4 and len(clf.coefs_) == 3
    assert clf.score(X, y) > 0.85


def test_user_callbacks_run_on_copies(iris):
    class CountEpochs(Callback):
        def initialize(self):
            self.epochs_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs_ += 1

    X, y = iris
    counter = CountEpochs()
    clf = fast(max_iter=4, callbacks=[counter])
    clf.fit(X, y)
    assert not hasattr(counter, "epochs_")  # the parameter is left as given
    fitted = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, CountEpochs)]
    assert fitted[0].epochs_ == 4


def test_verbose_prints_sklearn_lines(iris, capsys):
    X, y = iris
    fast(max_iter=2, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


def test_predict_log_proba_is_log_of_proba(iris):
    X, y = iris
    clf = fast(max_iter=5).fit(X, y)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)))


def test_prediction_in_batches_matches_one_pass(iris, monkeypatch):
    from sknn import _net

    X, y = iris
    clf = fast(max_iter=5, batch_norm=True).fit(X, y)
    calls = []
    clf.net_.module_.register_forward_hook(
        lambda module, args, out: calls.append(len(args[0])))
    whole = clf.predict_proba(X)
    assert calls == [150]
    monkeypatch.setattr(_net, "PREDICT_BATCH_SIZE", 7)
    calls.clear()
    batched = clf.predict_proba(X)
    assert calls == [7] * 21 + [3]  # the batched path ran
    np.testing.assert_allclose(batched, whole, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), whole.argmax(axis=1))


def test_device_auto_is_cpu_without_cuda(iris):
    X, y = iris
    clf = MLPClassifierTorch(max_iter=2, random_state=0).fit(X, y)
    assert clf.device == "auto"  # the parameter is not rewritten
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.device_ == expected
    assert next(clf.net_.module_.parameters()).device.type == expected


@pytest.mark.gpu
def test_cuda_fit_predicts_like_cpu(iris):
    X, y = iris
    gpu = MLPClassifierTorch(max_iter=5, random_state=0, device="cuda").fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(gpu, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_allclose(loaded.predict_proba(X), gpu.predict_proba(X),
                               rtol=1e-5)


def test_warm_start_fit_takes_new_parameters(iris):
    X, y = iris
    clf = fast(max_iter=3, warm_start=True, solver="lbfgs", alpha=0.0).fit(X, y)
    clf.set_params(solver="lbfgs", alpha=0.5).fit(X, y)
    assert clf.net_.penalty_in_loss == pytest.approx(0.5 / 150)
    sgd = fast(max_iter=3, warm_start=True, solver="sgd").fit(X, y)
    sgd.set_params(learning_rate_init=0.05).fit(X, y)
    assert sgd.net_.optimizer_.param_groups[0]["lr"] == 0.05


def test_warm_start_takes_the_new_parameters(iris):
    X, y = iris
    clf = fast(max_iter=3, warm_start=True, solver="sgd")
    clf.fit(X, y)
    stopping = dict(clf.net_.callbacks_)["sklearn_stopping"]
    clf.set_params(tol=1e9, n_iter_no_change=2, max_iter=50)
    clf.fit(X, y)
    assert dict(clf.net_.callbacks_)["sklearn_stopping"] is stopping  # state kept
    assert stopping.tol == 1e9 and clf.n_iter_ == 3  # the new tol stopped it
    clf.set_params(solver="adam", tol=1e-4)
    clf.fit(X, y)  # no SGD setting reaches Adam
    assert isinstance(clf.net_.optimizer_, torch.optim.Adam)


# ------------------------------------------------ the drop-in details (#15) ----
def test_batch_norm_merges_a_last_batch_of_one_into_the_previous(iris):
    X, y = iris
    X201 = np.vstack([X, X[:51]])
    y201 = np.concatenate([y, y[:51]])
    clf = fast(batch_norm=True, max_iter=2).fit(X201, y201)
    plain = fast(max_iter=2).fit(X201, y201)
    small = fast(batch_norm=True, batch_size=100, max_iter=2).fit(X201, y201)

    def sizes(model):
        return [b["train_batch_size"] for b in model.net_.history[-1]["batches"]
                if "train_batch_size" in b]

    assert sizes(clf) == [201]  # 200 + the single last row
    assert sizes(small) == [100, 101]
    assert sizes(plain) == [200, 1]  # without batch norm, batches are unchanged
    assert np.isfinite(clf.loss_curve_).all()
    assert clf.loss_curve_[1] < clf.loss_curve_[0]  # it trains


def test_batch_norm_on_a_single_sample_is_explained():
    with pytest.raises(ValueError, match="batch_norm=True needs at least 2"):
        fast(batch_norm=True, max_iter=2).partial_fit(np.ones((1, 3)), [0],
                                                      classes=[0, 1])


def test_lbfgs_ignores_early_stopping_as_sklearn(iris):
    X, y = iris
    ours = [fast(solver="lbfgs", max_iter=20, early_stopping=es).fit(X, y)
            for es in (False, True)]
    theirs = [MLPClassifier(solver="lbfgs", max_iter=20, early_stopping=es,
                            random_state=0).fit(X, y) for es in (False, True)]
    # scikit-learn trains on every sample either way...
    np.testing.assert_array_equal(theirs[0].coefs_[0], theirs[1].coefs_[0])
    # ...and so does sknn: no validation split, no validation scores
    np.testing.assert_array_equal(ours[0].coefs_[0], ours[1].coefs_[0])
    assert ours[1].validation_scores_ is None
    assert "valid_loss" not in ours[1].net_.history[-1]


def _user_guide_models():
    """The user guide's example, fitted by scikit-learn; sknn's net of the same
    architecture holding scikit-learn's weights (in float32)."""
    X, y = [[0.0, 0.0], [1.0, 1.0]], [0, 1]
    params = dict(solver="lbfgs", alpha=1e-5, hidden_layer_sizes=(5, 2),
                  random_state=1)
    theirs = MLPClassifier(**params).fit(X, y)
    ours = fast(**params).fit(X, y)
    with torch.no_grad():
        for layer, W, b in zip(ours.net_.module_.linear_layers(), theirs.coefs_,
                               theirs.intercepts_):
            layer.weight.copy_(torch.from_numpy(W.T))
            layer.bias.copy_(torch.from_numpy(b))
    return ours, theirs


def test_predict_proba_is_float64_from_the_logits_as_sklearn():
    ours, theirs = _user_guide_models()
    X_new = [[2.0, 2.0], [-1.0, -2.0]]
    expected = theirs.predict_proba(X_new)
    assert expected[0, 0] == pytest.approx(1.967e-04, rel=1e-3)
    proba = ours.predict_proba(X_new)
    assert proba.dtype == np.float64
    # float32 weights and logits: the float64 probabilities agree to ~1e-5,
    # and none saturates to an exact 0 or 1 where scikit-learn's does not
    np.testing.assert_allclose(proba, expected, rtol=1e-4)
    assert (proba > 0).all()


def test_predict_log_proba_is_finite_where_sklearn_is():
    ours, theirs = _user_guide_models()
    X_new = [[2.0, 2.0], [-1.0, -2.0], [-30.0, -40.0]]
    with np.errstate(divide="ignore"):  # scikit-learn's log(0)
        expected = theirs.predict_log_proba(X_new)
    log_proba = ours.predict_log_proba(X_new)
    assert np.isfinite(log_proba[np.isfinite(expected)]).all()
    assert np.isfinite(log_proba).all()  # log-sigmoid: finite beyond float64's exp
    finite = np.isfinite(expected)
    np.testing.assert_allclose(log_proba[finite], expected[finite], rtol=1e-4,
                               atol=1e-7)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(np.exp(log_proba), ours.predict_proba(X_new),
                                   rtol=1e-12)


def test_multiclass_log_proba_is_log_softmax(iris):
    X, y = iris
    clf = fast(max_iter=5).fit(X, y)
    far = X[:3] * 1e4  # logits in the thousands: softmax underflows to 0.0
    log_proba = clf.predict_log_proba(far)
    assert np.isfinite(log_proba).all()
    logits = clf.net_.forward_logits(torch.tensor(far, dtype=torch.float32))
    expected = torch.log_softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(log_proba, expected, rtol=1e-12, atol=1e-12)


def test_sklearn_examples_convergence_filter_silences_sknn(iris):
    # scikit-learn's gallery (plot_mlp_training_curves.py) silences its MLP so
    X, y = iris
    for model in (MLPClassifier(max_iter=2, random_state=0), fast(max_iter=2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=ConvergenceWarning,
                                    module="sklearn")
            model.fit(X, y)
        assert not [w for w in caught if w.category is ConvergenceWarning]
    with pytest.warns(ConvergenceWarning) as caught:
        fast(max_iter=2).fit(X, y)
    # attributed outside the sknn package, to scikit-learn's fit wrapper
    package = os.path.dirname(os.path.abspath(sknn.__file__)) + os.sep
    assert not os.path.abspath(caught[0].filename).startswith(package)
    assert os.path.basename(caught[0].filename) == "base.py"


def test_fixed_epochs_with_infinite_patience_do_not_warn(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = fast(max_iter=3, n_iter_no_change=np.inf).fit(X, y)
    assert clf.n_iter_ == 3


def test_string_labels_keep_numpy_string_dtype_as_sklearn(iris):
    X, y = iris
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    theirs = MLPClassifier(max_iter=2, random_state=0).fit(X, labels)
    ours = fast(max_iter=2).fit(X, labels)
    assert ours.classes_.dtype == theirs.classes_.dtype == np.dtype("<U1")
    assert ours.predict(X).dtype == theirs.predict(X).dtype


def test_list_input_gives_float64_coefs_as_sklearn(iris):
    X, y = iris
    theirs = MLPClassifier(max_iter=2, random_state=0).fit(X.tolist(), y)
    ours = fast(max_iter=2).fit(X.tolist(), y)
    ours32 = fast(max_iter=2).fit(X.astype(np.float32), y)
    assert ours.coefs_[0].dtype == theirs.coefs_[0].dtype == np.float64
    assert ours32.coefs_[0].dtype == np.float32
