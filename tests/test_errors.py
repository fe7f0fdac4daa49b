"""Bad input gets scikit-learn's errors, with messages that name the problem."""


import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sknn import MLPClassifierTorch


def fast(**params):
    return MLPClassifierTorch(**{"max_iter": 3, "random_state": 0, "device": "cpu",
                                 **params})


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    return fast().fit(X, y), X, y


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba",
                                    "score"])
def test_not_fitted_error_before_fit(method):
    args = (np.zeros((2, 3)),) if method != "score" else (np.zeros((2, 3)), [0, 1])
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        getattr(fast(), method)(*args)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_in_X(value):
    X = np.ones((10, 2))
    X[3, 1] = value
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        fast().fit(X, np.arange(10) % 2)


def test_nan_at_predict(fitted):
    clf, X, _ = fitted
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(X)


def test_empty_X():
    with pytest.raises(ValueError, match="0 sample"):
        fast().fit(np.empty((0, 3)), [])


def test_length_mismatch():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fast().fit(np.ones((5, 2)), [0, 1, 0])


def test_single_class_fits_and_predicts_it_as_sklearn_does():
    X = np.random.RandomState(0).normal(size=(10, 2))
    clf = fast().fit(X, ["a"] * 10)
    assert clf.classes_.tolist() == ["a"] and clf.n_outputs_ == 1
    assert clf.predict(X).tolist() == ["a"] * 10
    assert clf.predict_proba(X).shape == (10, 2)  # scikit-learn's two columns


def test_continuous_y():
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        fast().fit(np.ones((5, 2)), [0.1, 0.2, 0.3, 0.4, 0.5])


def test_wrong_feature_count_at_predict(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifierTorch "
                                         "is expecting 3 features"):
        clf.predict(np.ones((2, 5)))


def test_non_numeric_X():
    with pytest.raises(ValueError, match="could not convert string to float"):
        fast().fit(np.array([["a", "b"], ["c", "d"]]), [0, 1])


def test_one_dimensional_X_is_explained():
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        fast().fit(np.arange(6.0), [0, 1] * 3)


def test_y_none_is_explained():
    with pytest.raises(ValueError, match="requires y to be passed"):
        fast().fit(np.ones((4, 2)), None)


@pytest.mark.parametrize("params, message", [
    ({"alpha": -1}, "The 'alpha' parameter of MLPClassifierTorch must be a float "
                    "in the range \\[0.0, inf\\). Got -1 instead."),
    ({"solver": "rmsprop"}, "The 'solver' parameter of MLPClassifierTorch must be "
                            "a str among"),
    ({"activation": "gelu"}, "The 'activation' parameter"),
    ({"dropout": 1.0}, "The 'dropout' parameter"),
    ({"weight_init": "zeros"}, "The 'weight_init' parameter"),
    ({"batch_size": 0}, "The 'batch_size' parameter"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be > 0"),
])
def test_parameter_errors_come_from_the_constraints(params, message):
    with pytest.raises(ValueError, match=message):
        fast(**params).fit(np.ones((6, 2)), [0, 1] * 3)


def test_unavailable_device_is_explained(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*device='auto'"):
        fast(device="cuda").fit(np.ones((6, 2)), [0, 1] * 3)


def test_unknown_device_string_is_explained():
    with pytest.raises(ValueError, match="is not a torch device"):
        fast(device="tpu9").fit(np.ones((6, 2)), [0, 1] * 3)


def test_onehot_with_wrong_width_at_partial_fit():
    Y = np.eye(3)[[0, 1, 2, 0]]
    clf = fast().fit(np.ones((4, 2)), Y)
    with pytest.raises(ValueError, match="`y` has classes not in"):
        clf.partial_fit(np.ones((2, 2)), np.eye(4)[[0, 1]])


def test_huge_inputs_give_sklearn_message_not_torch_error():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 2)) * 1e30
    y = rng.randint(0, 2, size=40)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        fast(learning_rate_init=1e5, solver="sgd").fit(X, y)


def test_partial_fit_with_lbfgs_is_unavailable():
    clf = fast(solver="lbfgs")
    assert not hasattr(clf, "partial_fit")  # as scikit-learn's MLPClassifier
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as exc:
        clf.partial_fit(np.ones((4, 2)), [0, 1, 0, 1], classes=[0, 1])
    assert "only available for stochastic" in str(exc.value.__cause__)


def test_float64_beyond_float32_range_is_explained(fitted):
    from skorch.callbacks import Callback

    class Epochs(Callback):  # the fit trains a copy: counts on the class
        ends = []

        def on_epoch_end(self, net, **kwargs):
            self.ends.append(len(net.history))

    X = np.ones((10, 2))
    X[3, 1] = 1e39  # finite in float64, infinite in float32
    epochs = Epochs()
    # scikit-learn's error after training, with what it means for float32;
    # the fit stops at the first epoch instead of training max_iter of NaN
    with pytest.warns(RuntimeWarning, match="overflow"), pytest.raises(
            ValueError, match=r"Solver produced non-finite parameter weights"
            r"(.|\n)*float32(.|\n)*StandardScaler"):
        fast(max_iter=50, callbacks=[epochs]).fit(X, np.arange(10) % 2)
    assert Epochs.ends == [1]
    clf, X_fit, _ = fitted
    X_big = X_fit[:1].copy()
    X_big[0, 0] = -1e300
    with pytest.raises(ValueError, match=r"too large for dtype\('float32'\)"):
        clf.predict_proba(X_big)


def test_sample_weights_averaging_zero_train_as_sklearn():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    weight = np.tile([1.0, 1.0, -1.0, -1.0], 10)  # mean 0; every batch of 10 not
    assert weight.mean() == 0
    theirs = MLPClassifier(max_iter=3, batch_size=10, random_state=0,
                           shuffle=False).fit(X, y, sample_weight=weight)
    ours = fast(batch_size=10, shuffle=False).fit(X, y, sample_weight=weight)
    assert np.isfinite(theirs.loss_curve_).all()
    assert len(ours.loss_curve_) == 3 and np.isfinite(ours.loss_curve_).all()
    # one full batch whose weights sum to zero: scikit-learn divides by zero
    with pytest.raises(ZeroDivisionError):
        MLPClassifier(solver="lbfgs").fit(X, y, sample_weight=weight)
    with pytest.raises(ValueError, match="Sample weights sum to zero"):
        fast(solver="lbfgs").fit(X, y, sample_weight=weight)


@pytest.mark.parametrize("sizes", [(10**9,), (10**30,), (64, 10**12)])
def test_oversized_layers_are_refused_before_allocating(sizes):
    with pytest.raises(ValueError, match="Use smaller layers"):
        fast(hidden_layer_sizes=sizes).fit(np.ones((4, 64)), [0, 1, 0, 1])


def test_network_larger_than_the_memory_is_refused_unallocated(monkeypatch):
    import resource

    from sknn import _training

    monkeypatch.setattr(_training, "_memory_bytes", lambda device: 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # 6.4 million parameters (25 MB of weights) against a 1 MiB device
    with pytest.raises(ValueError, match=r"6,600,001 parameters.*100\.7 MiB.*1\.0 MiB"):
        fast(hidden_layer_sizes=(100_000,)).fit(np.ones((4, 64)), [0, 1, 0, 1])
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000


@pytest.mark.parametrize("item", [3, "print_log", ("progress",), (3, None),
                                  ("named", 5), object()])
def test_bad_callbacks_items_are_explained(item):
    with pytest.raises(ValueError, match="Each item of 'callbacks' must be"):
        fast(callbacks=[item]).fit(np.ones((4, 2)), [0, 1, 0, 1])
