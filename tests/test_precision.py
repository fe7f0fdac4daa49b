"""precision: mixed-precision training on the CPU, its policy per device, and
the errors for what a device cannot do."""

import statistics
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback

import sknn._training as training
from sknn import CNNClassifier, MLPClassifierTorch


class ForwardDtype(Callback):
    """Records the dtype of the training batches' outputs."""

    def initialize(self):
        self.seen_ = set()
        return self

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training:
            self.seen_.add(y_pred.dtype)


def fit(cls, X, y, **params):
    params = {"max_iter": 3, "random_state": 0, "device": "cpu",
              "callbacks": [ForwardDtype()], **params}
    return cls(**params).fit(X, y)


def forward_dtypes(clf):
    return dict(clf.net_.callbacks_)["ForwardDtype"].seen_


@pytest.mark.parametrize("cls", [MLPClassifierTorch, CNNClassifier])
def test_bfloat16_trains_in_bf16_and_keeps_float32_weights(cls, digits):
    X, y = digits
    clf = fit(cls, X, y, precision="bfloat16")
    assert forward_dtypes(clf) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in clf.net_.module_.parameters())
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert all(np.isfinite(clf.loss_curve_))


def test_float32_is_the_default_and_plain(digits):
    X, y = digits
    clf = fit(MLPClassifierTorch, X, y)
    assert clf.precision == "float32"
    assert forward_dtypes(clf) == {torch.float32}
    assert clf.net_.autocast_dtype is None and clf.net_.grad_scaler is None


def test_bfloat16_accuracy_is_float32s_across_seeds(digits):
    X, y = digits
    gaps = []
    for seed in range(3):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=seed)
        scores = {}
        for precision in ("float32", "bfloat16"):
            clf = fit(MLPClassifierTorch, X_tr, y_tr, precision=precision,
                      max_iter=20, random_state=seed)
            scores[precision] = clf.score(X_te, y_te)
        gaps.append(scores["bfloat16"] - scores["float32"])
    assert abs(statistics.median(gaps)) <= 0.02, gaps


def test_float16_needs_cuda(digits):
    X, y = digits
    with pytest.raises(ValueError, match="precision='float16' needs a CUDA device"):
        fit(MLPClassifierTorch, X, y, precision="float16")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16),
                                              (False, torch.float32)])
def test_auto_is_bfloat16_only_where_native(digits, monkeypatch, native, expected):
    X, y = digits
    monkeypatch.setattr(training, "_bf16_native", lambda device: native)
    clf = fit(MLPClassifierTorch, X, y, precision="auto")
    assert forward_dtypes(clf) == {expected}


def test_precision_policy_on_cuda_without_touching_a_gpu():
    # the policy only decides; nothing runs on the device here
    with pytest.raises(ValueError, match="cannot be used with solver='lbfgs'"):
        training.precision_policy("float16", "cuda", "lbfgs")
    assert training.precision_policy("bfloat16", "cuda:1", "adam") == (
        torch.bfloat16, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns without CUDA
        dtype, scaler = training.precision_policy("float16", "cuda", "sgd")
    assert dtype is torch.float16 and isinstance(scaler, torch.amp.GradScaler)


def test_unknown_precision_is_a_parameter_error(digits):
    X, y = digits
    with pytest.raises(ValueError, match="'precision' parameter of "
                                         "MLPClassifierTorch must be a str among"):
        MLPClassifierTorch(precision="fp8").fit(X, y)
