"""Persistence: joblib round trips, GPU-fitted models on a CPU-only machine, and
saves that never leave a half-written file."""

import io
import pickle
import threading

import joblib
import numpy as np
import pytest
import torch
from skorch.exceptions import DeviceWarning

from sknn import MLPClassifierTorch
from sknn._persistence import dump


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    clf = MLPClassifierTorch((32,), max_iter=5, random_state=0, device="cpu",
                             dropout=0.2, batch_norm=True)
    return clf.fit(X, y), X, y


def round_trip(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def test_joblib_round_trip_predicts_identically(fitted):
    clf, X, _ = fitted
    loaded = round_trip(clf)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.get_params() == clf.get_params()
    assert loaded.loss_curve_ == clf.loss_curve_
    assert loaded.history_ == clf.history_


def _continue(clf, X, y, how):
    if how == "partial_fit":
        return clf.partial_fit(X, y, classes=np.unique(y))
    return clf.set_params(warm_start=True, max_iter=2).fit(X, y)


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_loaded_model_continues_from_its_weights(digits, how, solver):
    X, y = digits
    X, y = X[:600], y[:600]
    params = dict(hidden_layer_sizes=(16,), solver=solver, momentum=0.0,
                  learning_rate_init=0.1 if solver == "sgd" else 0.01, max_iter=3,
                  random_state=0, device="cpu")
    clf = MLPClassifierTorch(**params).fit(X, y)
    loaded = round_trip(clf)
    if solver == "adam":
        # the pickle keeps the weights, not Adam's moments (see below): the
        # loaded model continues as the original does with a new optimizer.
        # Plain SGD keeps no state: nothing to restart there.
        clf.net_.initialize_optimizer()
    # the same continued training, from the loaded model and from the model
    # in memory, gives the same weights
    _continue(loaded, X, y, how)
    _continue(clf, X, y, how)
    for ours, theirs in zip(loaded.coefs_ + loaded.intercepts_,
                            clf.coefs_ + clf.intercepts_):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert loaded.loss_curve_ == pytest.approx(clf.loss_curve_, rel=1e-5)
    assert len(loaded.loss_curve_) == (4 if how == "partial_fit" else 5)
    # and it is not the same training started from new weights
    fresh = _continue(MLPClassifierTorch(**params), X, y, how)
    assert np.abs(fresh.coefs_[0] - loaded.coefs_[0]).max() > 1e-2
    assert loaded.loss_ < fresh.loss_


def test_gpu_fitted_model_loads_on_cpu(fitted, monkeypatch):
    """A pickle that says 'cuda' maps to the CPU where CUDA is absent.

    The tensors of a real GPU fit are CUDA tensors that skorch re-loads with
    ``map_location``; here the device labels are faked, which exercises the
    device choice at load time on a CPU-only machine.
    """
    clf, X, _ = fitted
    expected = clf.predict_proba(X)
    clf_gpu = pickle.loads(pickle.dumps(clf))
    clf_gpu.device_ = "cuda"
    clf_gpu.net_.device = "cuda"
    payload = pickle.dumps(clf_gpu)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning) as record:
        loaded = pickle.loads(payload)
    # sknn's own warning (skorch adds its "Requested to load data to CUDA")
    assert any("requested device (cuda) is not" in str(w.message) for w in record)
    assert loaded.device_ == "cpu"
    assert loaded.net_.device == "cpu"
    assert loaded.device == clf.device  # the parameter is not rewritten
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_model_stays_on_its_device_where_it_exists(fitted):
    clf, _, _ = fitted
    loaded = round_trip(clf)
    assert loaded.device_ == "cpu"


def test_predicting_from_threads_shares_one_model(fitted):
    clf, X, _ = fitted
    expected = clf.predict(X)
    results = [None] * 4

    def work(i):
        results[i] = clf.predict(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_failed_save_leaves_no_file_and_keeps_the_old_one(fitted, tmp_path):
    clf, X, _ = fitted
    path = tmp_path / "model.joblib"
    dump(clf, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot pickle"):
        dump({"model": clf, "bad": _Unpicklable()}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib"]
    np.testing.assert_array_equal(joblib.load(path).predict(X), clf.predict(X))


def test_saved_file_has_ordinary_permissions(fitted, tmp_path):
    import os
    import stat

    clf, _, _ = fitted
    path = tmp_path / "model.joblib"
    umask = os.umask(0o022)
    try:
        dump(clf, path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("early_stopping", [False, True])
def test_pickle_carries_the_weights_not_the_training_state(digits, early_stopping):
    X, y = digits
    clf = MLPClassifierTorch((256,), max_iter=3, random_state=0, device="cpu",
                             early_stopping=early_stopping).fit(X, y)
    weight_bytes = sum(p.numel() * 4 for p in clf.net_.module_.parameters())
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    # Adam's two moments and the coefs_ copies would triple it
    assert len(buffer.getvalue()) < 1.1 * weight_bytes + 60_000
    assert clf.net_.optimizer_.state  # the fitted model itself keeps training state
    loaded = round_trip(clf)
    assert loaded.net_.optimizer_.state == {}
    assert all("batches" not in row for row in loaded.net_.history)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for ours, theirs in zip(loaded.coefs_, clf.coefs_):
        np.testing.assert_array_equal(ours, theirs)
    assert loaded.net_.module is loaded.net_.module_


def test_loaded_cnn_predicts_and_keeps_training(digits):
    from sknn import CNNClassifier

    X, y = digits
    clf = CNNClassifier(conv_filters=(4,), dense_layer_sizes=(8,), max_iter=2,
                        random_state=0, device="cpu").fit(X, y)
    loaded = round_trip(clf)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loss = loaded.loss_
    for _ in range(3):
        loaded.partial_fit(X, y)
    assert loaded.loss_ < loss
