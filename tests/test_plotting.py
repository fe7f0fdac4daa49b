"""sknn.plotting.plot_history on real (tiny) fits; the Agg backend, no display."""

import builtins
import sys

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn.plotting import plot_history

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


@pytest.fixture(scope="module")
def small_digits(digits):
    X, y = digits
    return X[:300], y[:300]


def _fit(X, y, **kwargs):
    return MLPClassifierTorch(hidden_layer_sizes=(16,), max_iter=4, random_state=0,
                              n_iter_no_change=100, **kwargs).fit(X, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_history_train_only(small_digits, tmp_path):
    clf = _fit(*small_digits)
    path = tmp_path / "curves.png"
    fig = plot_history(clf, path)
    assert isinstance(fig, Figure)
    ax_loss, ax_acc = fig.axes
    (loss_line,) = ax_loss.get_lines()
    np.testing.assert_allclose(loss_line.get_ydata(),
                               [row["loss"] for row in clf.history_])
    np.testing.assert_array_equal(loss_line.get_xdata(), [1, 2, 3, 4])
    (acc_line,) = ax_acc.get_lines()
    np.testing.assert_allclose(acc_line.get_ydata(),
                               [row["accuracy"] for row in clf.history_])
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_history_with_validation_on_a_pipeline(small_digits):
    X, y = small_digits
    pipe = make_pipeline(StandardScaler(), MLPClassifierTorch(
        hidden_layer_sizes=(16,), max_iter=4, early_stopping=True, random_state=0,
        n_iter_no_change=100)).fit(X, y)
    fig = plot_history(pipe)
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_loss.get_lines()] == [
        "train", "validation"]
    history = pipe[-1].history_
    np.testing.assert_allclose(ax_acc.get_lines()[1].get_ydata(),
                               [row["val_accuracy"] for row in history])


def test_plot_history_unfitted_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a fitted estimator"):
        plot_history(MLPClassifierTorch())
    with pytest.raises(ValueError, match="StandardScaler has none"):
        plot_history(make_pipeline(MLPClassifierTorch(), StandardScaler()))


def test_plot_history_without_matplotlib_names_the_extra(small_digits, monkeypatch):
    clf = _fit(*small_digits)
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install 'sknn\[plot\]'"):
        plot_history(clf)
