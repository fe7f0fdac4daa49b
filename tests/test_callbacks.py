"""The callbacks that give skorch's loop scikit-learn's semantics."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

from sknn import MLPClassifierTorch
from sknn._callbacks import NoImprovementStopping


class _History(list):
    """Just enough of skorch's History for one callback: history[-1, key]."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return list.__getitem__(self, key[0])[key[1]]
        return list.__getitem__(self, key)


class _Net:
    def __init__(self, lr=0.1):
        self.history = _History()
        self.module_ = torch.nn.Linear(2, 1)
        self.optimizer_ = torch.optim.SGD(self.module_.parameters(), lr=lr)
        self.verbose = False

    def epoch(self, **scores):
        self.history.append(scores)


def run(callback, net, scores, key):
    """Feed ``scores`` epoch by epoch; return the epoch (1-based) it stopped at."""
    callback.initialize()
    callback.on_train_begin(net)
    for epoch, score in enumerate(scores, start=1):
        net.epoch(**{key: score})
        try:
            callback.on_epoch_end(net)
        except KeyboardInterrupt:
            return epoch
    return None


def test_loss_stopping_counts_epochs_without_tol_improvement():
    net = _Net()
    stopping = NoImprovementStopping("train_loss", tol=0.1, n_iter_no_change=2)
    # 1.0 is best; 0.95 and 0.92 improve by < tol; the third such epoch stops
    stopped = run(stopping, net, [1.0, 0.95, 0.92, 0.91, 0.5], "train_loss")
    assert stopped == 4
    assert stopping.best_ == pytest.approx(0.91)
    assert "Training loss did not improve more than tol=0.100000 for 2" in (
        net.stop_reason_)


def test_validation_stopping_keeps_the_best_weights():
    net = _Net()
    stopping = NoImprovementStopping("valid_acc", tol=0.0, n_iter_no_change=1,
                                     restore_best=True)
    scores = [0.5, 0.8, 0.7, 0.6]
    stopping.initialize()
    stopping.on_train_begin(net)
    best_weight = None
    for score in scores:
        net.epoch(valid_acc=score)
        with torch.no_grad():
            net.module_.weight.add_(1.0)  # a new epoch, new weights
        if score == 0.8:
            best_weight = net.module_.weight.detach().clone()
        try:
            stopping.on_epoch_end(net)
        except KeyboardInterrupt:
            break
    stopping.on_train_end(net)
    torch.testing.assert_close(net.module_.weight, best_weight)
    assert stopping.best_ == 0.8


def test_adaptive_divides_the_rate_then_stops_when_tiny():
    net = _Net(lr=4e-6)
    stopping = NoImprovementStopping("train_loss", tol=1.0, n_iter_no_change=1,
                                     adaptive=True)
    stopped = run(stopping, net, [1.0] * 10, "train_loss")
    # 4e-6 -> 8e-7 after epoch 3; at epoch 5 the rate is too small: stop
    assert stopped == 5
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(8e-7)
    assert "Learning rate too small" in net.stop_reason_


def test_ctrl_c_keeps_the_model_and_warns():
    class Interrupt(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise KeyboardInterrupt

    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(50, 3)), np.arange(50) % 2
    clf = MLPClassifierTorch(max_iter=10, random_state=0, device="cpu",
                             callbacks=[Interrupt()])
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert clf.predict(X).shape == (50,)


def test_planned_stop_is_not_reported_as_interrupt():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(50, 3)), np.arange(50) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = MLPClassifierTorch(max_iter=100, tol=1e9, random_state=0,
                                 device="cpu").fit(X, y)
    assert clf.n_iter_ == 12 and not clf.net_.interrupted_
    with pytest.warns(ConvergenceWarning):
        MLPClassifierTorch(max_iter=2, random_state=0, device="cpu").fit(X, y)
