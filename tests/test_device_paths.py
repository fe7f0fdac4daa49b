"""The accelerator code paths, exercised on the CPU with the device faked (the
``gpu``-marked tests run them for real where CUDA is present)."""

import numpy as np
import pytest

from sknn import MLPClassifierTorch
from sknn._training import SknnNet


def _fit(X, y, **params):
    return MLPClassifierTorch(max_iter=3, random_state=0, device="cpu",
                              **params).fit(X, y)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_batch_losses_read_once_per_epoch_record_the_same_history(
        digits, monkeypatch, early_stopping):
    X, y = digits
    per_batch = _fit(X, y, early_stopping=early_stopping)
    monkeypatch.setattr(SknnNet, "_defer_batch_losses", lambda self: True)
    deferred = _fit(X, y, early_stopping=early_stopping)
    assert deferred.loss_curve_ == per_batch.loss_curve_
    for ours, theirs in zip(deferred.net_.history, per_batch.net_.history):
        assert [b["train_loss"] for b in ours["batches"] if "train_loss" in b] == [
            b["train_loss"] for b in theirs["batches"] if "train_loss" in b]
        if early_stopping:
            assert ours["valid_loss"] == theirs["valid_loss"]
    np.testing.assert_array_equal(deferred.predict_proba(X),
                                  per_batch.predict_proba(X))
