"""The bar of ``progress_bar=True``: a batch count inside each epoch with the
running loss, the epoch count with the epoch's figures, drawn only on a
terminal, never in the way of ``verbose`` lines, and nothing at all when off.
"""

import io
import pickle
import sys

import numpy as np
import pytest
from skorch.callbacks import Callback

from sknn import CNNClassifier, MLPClassifierTorch


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal, so that tqdm draws."""

    def isatty(self):
        return True


class BarWatch(Callback):
    """Notes the state of sknn's bars at each epoch end (it runs after them)."""

    def initialize(self):
        self.epochs_ = []
        self.postfixes_ = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        bar = dict(net.callbacks_)["progress_bar"].batch_bar_
        if training and bar is not None:
            self.postfixes_.append(bar.postfix)

    def on_epoch_end(self, net, **kwargs):
        progress = dict(net.callbacks_)["progress_bar"]
        batches, epochs = progress.batch_bar_, progress.bar_
        self.epochs_.append({"batches": (batches.n, batches.total),
                             "batch_postfix": batches.postfix,
                             "epochs": (epochs.n, epochs.total),
                             "epoch_postfix": epochs.postfix})


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:200].astype(np.float32), y[:200]


def _fit(est, data, stream, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stream)
    return est.fit(*data)


@pytest.mark.parametrize("make", [
    lambda **p: MLPClassifierTorch(hidden_layer_sizes=(16,), **p),
    lambda **p: CNNClassifier(conv_filters=(4,), dense_layer_sizes=(8,), **p),
], ids=["mlp", "cnn"])
def test_batch_bar_counts_each_epoch_and_shows_the_recorded_loss(
        make, data, monkeypatch):
    est = make(max_iter=3, batch_size=64, alpha=0.0, random_state=0,
               progress_bar=True, callbacks=[BarWatch()])
    _fit(est, data, Terminal(), monkeypatch)
    watch = dict(est.net_.callbacks_)["BarWatch"]
    seen = watch.epochs_
    # on the CPU the batch losses are on the host: the running loss shows
    # from the first batch on
    assert len(watch.postfixes_) == 12
    assert all(p.startswith("loss=") for p in watch.postfixes_)
    # 200 samples in batches of 64: 4 batches, every epoch
    assert [s["batches"] for s in seen] == [(4, 4)] * 3
    assert [s["epochs"] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    for s, record in zip(seen, est.history_):
        # the running loss at the epoch's end is the epoch's recorded loss
        assert s["batch_postfix"] == f"loss={record['loss']:.4f}"
        assert s["epoch_postfix"] == (f"loss={record['loss']:.4f}, "
                                      f"accuracy={record['accuracy']:.4f}")


def test_epoch_bar_shows_validation_figures_and_why_it_stopped(data, monkeypatch):
    stream = Terminal()
    est = MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=50,
                             early_stopping=True, n_iter_no_change=1, tol=1e9,
                             random_state=0, progress_bar=True)
    _fit(est, data, stream, monkeypatch)
    out = stream.getvalue()
    last = est.history_[-1]
    assert est.n_iter_ < 50
    assert (f"val_loss={last['val_loss']:.4f}, "
            f"val_accuracy={last['val_accuracy']:.4f}") in out
    assert f"train: stopped at epoch {est.n_iter_}/50" in out
    assert out.splitlines()[-1].startswith(
        f"Stopped early at epoch {est.n_iter_} of 50: Validation score did "
        "not improve")


def test_nothing_is_drawn_off_a_terminal(data, monkeypatch):
    stream = io.StringIO()
    est = MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=3,
                             random_state=0, progress_bar=True)
    _fit(est, data, stream, monkeypatch)
    last = est.history_[-1]
    # one plain line, no redrawn frames
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines()[0] == (
        f"train: 3/3 epochs, loss={last['loss']:.4f}, "
        f"accuracy={last['accuracy']:.4f}")


def test_verbose_lines_stay_whole_beside_the_bars(data, monkeypatch, capsys):
    est = MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=3,
                             random_state=0, progress_bar=True, verbose=True)
    stream = Terminal()
    _fit(est, data, stream, monkeypatch)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert [line.split(",")[0] for line in lines] == [
        f"Iteration {i}" for i in (1, 2, 3)]
    assert "3/3" in stream.getvalue()


def test_progress_bar_false_adds_nothing(data):
    est = MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=2,
                             random_state=0).fit(*data)
    assert "progress_bar" not in dict(est.net_.callbacks_)


def test_fitted_model_with_a_bar_pickles(data, monkeypatch):
    est = MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=2,
                             random_state=0, progress_bar=True)
    _fit(est, data, Terminal(), monkeypatch)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(data[0]), est.predict(data[0]))
