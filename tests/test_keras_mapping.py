"""The "Coming from Keras" page (docs/keras.rst), checked by training both ways.

TensorFlow is too large for CI, so the Keras side is Keras' semantics written
as a plain torch loop: the same module, the same initial weights, the same
batches in the same order, the batch's mean cross-entropy plus Keras'
``l2(lam)`` term ``lam * ||W||^2`` on the weights (not the biases), and the
optimizer Keras would use. sknn, given the parameters the page maps to, must
end with the same weights.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.preprocessing import LabelBinarizer
from skorch.callbacks import Callback

from sknn import CNNClassifier, MLPClassifierTorch


class RecordInitialWeights(Callback):
    """Keeps a copy of the module's weights as training begins."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


def _fit_recording(X, y, **params):
    clf = MLPClassifierTorch(callbacks=[("record", RecordInitialWeights())],
                             shuffle=False, device="cpu", random_state=0, **params)
    clf.fit(X, y)
    return clf, dict(clf.net_.callbacks_)["record"].state_


def _keras_loop(clf, initial, X, y, *, optimizer, lam, batch_size, epochs,
                loss="sparse_categorical_crossentropy"):
    """Keras' training, in torch: loss = mean CE (or, with ``loss="mse"``, the
    mean squared error without a 1/2) + lam * sum ||W||^2 (weights of the
    Dense layers only), batches in order, ``optimizer`` on all parameters."""
    module = copy.deepcopy(clf.net_.module_)
    module.load_state_dict(initial)
    module.train()
    opt = optimizer(module.parameters())
    kernels = [m.weight for m in module.modules() if isinstance(m, torch.nn.Linear)]
    X = torch.as_tensor(X, dtype=torch.float32)
    if loss == "mse":
        y = torch.as_tensor(y, dtype=torch.float32).reshape(len(X), -1)
        criterion = F.mse_loss
    else:
        y = torch.as_tensor(y, dtype=torch.long)
        criterion = F.cross_entropy
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            batch_loss = criterion(module(xb), yb)
            batch_loss = batch_loss + lam * sum(w.pow(2).sum() for w in kernels)
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
    return module.state_dict()


def _keras_early_stopping_epoch(scores, patience, min_delta):
    """The epoch (1-based) at which Keras' EarlyStopping stops on ``scores``
    (higher is better), or None: after ``patience`` epochs that do not beat
    the best by more than ``min_delta``."""
    best, wait = -np.inf, 0
    for epoch, score in enumerate(scores, start=1):
        if score - min_delta > best:
            best, wait = score, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return None


def _assert_same_weights(clf, state, atol=2e-5):
    got = clf.net_.module_.state_dict()
    assert got.keys() == state.keys()
    for key in got:
        torch.testing.assert_close(got[key], state[key], atol=atol, rtol=1e-4,
                                   msg=lambda m, key=key: f"{key}: {m}")


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:100].astype(np.float32), y[:100]


@pytest.mark.parametrize("batch_size", [16, 32])
def test_sgd_with_l2_matches_keras(data, batch_size):
    """SGD(learning_rate=lr) with kernel_regularizer=l2(lam) is solver='sgd',
    momentum=0.0, alpha=2 * lam * batch_size. 100 samples: the last batch of an
    epoch is a short one, and the mapping holds for it too."""
    X, y = data
    lr, lam, epochs = 0.05, 0.01, 2
    clf, initial = _fit_recording(
        X, y, hidden_layer_sizes=(32, 16), solver="sgd", momentum=0.0,
        nesterovs_momentum=False, learning_rate_init=lr,
        alpha=2 * lam * batch_size, batch_size=batch_size, max_iter=epochs)
    keras = _keras_loop(clf, initial, X, y, lam=lam, batch_size=batch_size,
                        epochs=epochs,
                        optimizer=lambda p: torch.optim.SGD(p, lr=lr))
    _assert_same_weights(clf, keras)


def test_adam_with_l2_matches_keras(data):
    """The L2 mapping is the optimizer's business only through the gradient:
    Adam(learning_rate=lr, epsilon=1e-8) with l2(lam) is solver='adam',
    alpha=2 * lam * batch_size."""
    X, y = data
    lr, lam, batch_size = 0.01, 0.001, 25
    clf, initial = _fit_recording(
        X, y, hidden_layer_sizes=(32,), solver="adam", learning_rate_init=lr,
        alpha=2 * lam * batch_size, batch_size=batch_size, max_iter=2)
    keras = _keras_loop(clf, initial, X, y, lam=lam, batch_size=batch_size,
                        epochs=2,
                        optimizer=lambda p: torch.optim.Adam(p, lr=lr, eps=1e-8))
    _assert_same_weights(clf, keras, atol=5e-5)


def test_alpha_equal_to_lambda_is_far_too_weak(data):
    """The old table's l2(0.01) <-> alpha=0.01 does not train like Keras."""
    X, y = data
    lr, lam, batch_size = 0.05, 0.01, 32
    clf, initial = _fit_recording(
        X, y, hidden_layer_sizes=(32,), solver="sgd", momentum=0.0,
        learning_rate_init=lr, alpha=lam, batch_size=batch_size, max_iter=3)
    keras = _keras_loop(clf, initial, X, y, lam=lam, batch_size=batch_size,
                        epochs=3, optimizer=lambda p: torch.optim.SGD(p, lr=lr))
    with pytest.raises(AssertionError):
        _assert_same_weights(clf, keras)


def test_momentum_zero_makes_the_update_lr_times_the_gradient(data):
    """Keras' SGD() has no momentum: one step moves each weight by exactly
    -lr * grad. scikit-learn's default (momentum=0.9, Nesterov) moves the first
    step 1.9 times as far, which is why solver='sgd' alone is not SGD()."""
    X, y = data
    X, y = X[:32], y[:32]  # one batch, one step
    lr = 0.1
    common = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=lr,
                  alpha=0.0, batch_size=32, max_iter=1)
    plain, initial = _fit_recording(X, y, momentum=0.0, **common)
    module = copy.deepcopy(plain.net_.module_)
    module.load_state_dict(initial)
    loss = F.cross_entropy(module(torch.as_tensor(X)), torch.as_tensor(y))
    grads = torch.autograd.grad(loss, list(module.parameters()))
    names = [name for name, _ in module.named_parameters()]
    after = plain.net_.module_.state_dict()
    for name, grad in zip(names, grads):
        torch.testing.assert_close(initial[name] - after[name], lr * grad,
                                   atol=1e-6, rtol=1e-5)

    default, initial_default = _fit_recording(X, y, **common)  # momentum=0.9
    for key in initial:
        torch.testing.assert_close(initial_default[key], initial[key])
    step = (initial[names[0]] - default.net_.module_.state_dict()[names[0]])
    ratio = step.norm() / (lr * grads[0]).norm()
    assert float(ratio) == pytest.approx(1.9, rel=1e-3)


def test_dropout_is_keras_dropout(data):
    """Dropout(rate) after each hidden layer is dropout=rate: inverted dropout
    while training (kept units scaled by 1 / (1 - rate)), none at predict."""
    X, y = data
    clf, _ = _fit_recording(X, y, hidden_layer_sizes=(64, 32), dropout=0.5,
                            max_iter=1)
    drops = [m for m in clf.net_.module_.modules()
             if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drops] == [0.5, 0.5]
    ones = torch.ones(10_000)
    drops[0].train()
    kept = drops[0](ones)
    assert set(torch.unique(kept).tolist()) == {0.0, 2.0}
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("name, check", [
    ("truncated_normal", "truncated"), ("glorot_uniform", "glorot")])
def test_initializers_match_keras(data, name, check):
    X, y = data
    clf, initial = _fit_recording(X, y, hidden_layer_sizes=(256,),
                                  weight_init=name, max_iter=1)
    linears = [m for m in clf.net_.module_.modules()
               if isinstance(m, torch.nn.Linear)]
    keys = [k for k in initial if k.endswith("weight")]
    weight = initial[keys[0]]
    bias = initial[keys[0].replace("weight", "bias")]
    assert torch.count_nonzero(bias) == 0  # Keras' bias_initializer='zeros'
    if check == "truncated":
        # TruncatedNormal(stddev=0.05): cut at two standard deviations
        assert float(weight.abs().max()) <= 0.1
        assert float(weight.std()) == pytest.approx(0.05 * 0.8796, rel=0.05)
    else:
        fan_out, fan_in = linears[0].weight.shape
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert float(weight.abs().max()) <= limit
        assert float(weight.abs().max()) > 0.95 * limit


def test_validation_split_and_early_stopping(digits):
    """validation_split=0.2 is early_stopping=True, validation_fraction=0.2:
    val_loss and val_accuracy every epoch. Keras' EarlyStopping(
    monitor='val_accuracy', patience=p, min_delta=d) stops where sknn with
    n_iter_no_change=p - 1 and tol=d stops (scikit-learn stops after
    n_iter_no_change + 1 epochs without improvement, Keras after patience)."""
    X, y = digits
    X, y = X[:300], y[:300]
    common = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01,
                  early_stopping=True, validation_fraction=0.2, tol=1e-4,
                  max_iter=40, random_state=0, device="cpu")
    full = MLPClassifierTorch(n_iter_no_change=np.inf, **common).fit(X, y)
    history = full.net_.history
    # 20% of 300 held out: the epochs train on the other 240
    assert all(row["train_samples"] == 240 for row in history)
    assert all("val_loss" in row and "val_accuracy" in row for row in full.history_)
    assert full.n_iter_ == 40
    patience = 3
    keras_stop = _keras_early_stopping_epoch(full.validation_scores_, patience,
                                             min_delta=1e-4)
    assert keras_stop is not None and keras_stop < 40
    stopped = MLPClassifierTorch(n_iter_no_change=patience - 1, **common).fit(X, y)
    assert stopped.n_iter_ == keras_stop
    # the same run up to the stop
    assert stopped.validation_scores_[:keras_stop] == full.validation_scores_[
        :keras_stop]


def test_to_categorical_targets_give_one_hot_predictions(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    params = dict(hidden_layer_sizes=(32,), max_iter=5, random_state=0,
                  device="cpu")
    by_label = MLPClassifierTorch(**params).fit(X, y)
    one_hot = np.eye(10, dtype=np.float32)[y]  # keras.utils.to_categorical(y)
    by_one_hot = MLPClassifierTorch(**params).fit(X, one_hot)
    np.testing.assert_array_equal(by_one_hot.predict(X),
                                  np.eye(10)[by_label.predict(X)])
    lb = LabelBinarizer().fit(y)
    np.testing.assert_array_equal(lb.inverse_transform(by_one_hot.predict(X)),
                                  by_label.predict(X))


def test_image_data_generator_names_are_accepted():
    """The ImageDataGenerator arguments the page lists train a CNN."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 8, 8, 1), dtype=np.float32)
    y = np.repeat([0, 1], 20)
    X[y == 1, :4] += 1.0
    augment = {"rotation_range": 10, "width_shift_range": 0.1,
               "height_shift_range": 0.1, "zoom_range": 0.1, "shear_range": 5,
               "horizontal_flip": True}
    clf = CNNClassifier(conv_filters=(4,), dense_layer_sizes=(8,), max_iter=2,
                        augment=augment, random_state=0, device="cpu").fit(X, y)
    assert clf.n_iter_ == 2
    with pytest.raises(ValueError, match="rotation_range"):
        CNNClassifier(augment={"rescale": 1 / 255}, max_iter=1,
                      device="cpu").fit(X, y)


def test_early_stopping_on_val_loss_with_skorchs_callback(digits):
    """EarlyStopping(monitor='val_loss', patience=p, min_delta=d) is skorch's
    EarlyStopping(monitor='valid_loss', patience=p, threshold=d,
    threshold_mode='abs') in callbacks, with a validation set every epoch
    (early_stopping=True) and scikit-learn's own rule switched off."""
    from skorch.callbacks import EarlyStopping

    X, y = digits
    X, y = X[:300], y[:300]
    common = dict(hidden_layer_sizes=(32,), learning_rate_init=0.02,
                  early_stopping=True, validation_fraction=0.2,
                  n_iter_no_change=np.inf, max_iter=40, random_state=0,
                  device="cpu")
    full = MLPClassifierTorch(**common).fit(X, y)
    patience, min_delta = 3, 1e-3
    keras_stop = _keras_early_stopping_epoch(
        [-row["val_loss"] for row in full.history_], patience, min_delta)
    assert keras_stop is not None and keras_stop < 40
    stopped = MLPClassifierTorch(callbacks=[EarlyStopping(
        monitor="valid_loss", patience=patience, threshold=min_delta,
        threshold_mode="abs")], **common).fit(X, y)
    assert stopped.n_iter_ == keras_stop


def _keras_mse_loop(reg, initial, X, y, **kwargs):
    """Keras' Dense(1) + loss="mse" in torch: mean squared error (no 1/2) plus
    lam * sum ||W||^2, batches in order."""
    return _keras_loop(reg, initial, X, y, loss="mse", **kwargs)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_dense_1_with_mse_is_the_regressor(data, solver):
    """Dense(1) + loss="mse" is MLPRegressorTorch, whose loss is scikit-learn's
    half squared error: its gradient is half Keras', so SGD(learning_rate=lr)
    with l2(lam) is learning_rate_init=2 * lr, alpha=lam * batch_size (Adam
    ignores the scale of the gradient: learning_rate_init=lr, the same alpha)."""
    from sknn import MLPRegressorTorch

    X, _ = data
    y = np.tanh(X[:, :4].sum(axis=1)).astype(np.float32)
    lr, lam, batch_size = (0.05, 0.01, 32) if solver == "sgd" else (0.01, 0.001, 25)
    reg = MLPRegressorTorch(
        hidden_layer_sizes=(16,), solver=solver, momentum=0.0,
        learning_rate_init=2 * lr if solver == "sgd" else lr,
        alpha=lam * batch_size, batch_size=batch_size, max_iter=2,
        callbacks=[("record", RecordInitialWeights())], shuffle=False,
        device="cpu", random_state=0, progress_bar=False).fit(X, y)
    initial = dict(reg.net_.callbacks_)["record"].state_
    optimizer = (lambda p: torch.optim.SGD(p, lr=lr)) if solver == "sgd" else (
        lambda p: torch.optim.Adam(p, lr=lr, eps=1e-8))
    keras = _keras_mse_loop(reg, initial, X, y, optimizer=optimizer, lam=lam,
                            batch_size=batch_size, epochs=2)
    _assert_same_weights(reg, keras, atol=5e-5)
