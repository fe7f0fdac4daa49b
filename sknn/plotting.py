"""Learning curves of a fitted sknn estimator (matplotlib, an optional extra)."""

import os

from sknn._deps import require
from sknn._pipeline import final_estimator

__all__ = ["plot_history"]


def plot_history(estimator, path=None):
    """Plot the training (and validation) loss and accuracy (R^2) per epoch.

    Parameters
    ----------
    estimator : estimator
        A fitted :class:`~sknn.MLPClassifierTorch`, :class:`~sknn.CNNClassifier`
        or :class:`~sknn.MLPRegressorTorch`, or a fitted
        :class:`~sklearn.pipeline.Pipeline` (or search such as
        :class:`~sklearn.model_selection.GridSearchCV`) whose final estimator
        is one. Its ``history_`` is plotted; validation curves appear when it was
        fitted with ``early_stopping=True``.
    path : str or path-like, default=None
        When given, the figure is also saved there (the format follows the
        suffix, e.g. ``.png``, ``.pdf``, ``.svg``).

    Returns
    -------
    fig : matplotlib.figure.Figure
        A figure with two axes: loss (left) and accuracy (right) against the
        epoch number; for a regressor, the right one is the validation R^2
        (with ``early_stopping=True``; the loss alone otherwise).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the estimator is not fitted or has no ``history_``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sknn import MLPClassifierTorch
    >>> from sknn.plotting import plot_history
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifierTorch(max_iter=5, early_stopping=True).fit(X, y)
    ... # doctest: +SKIP
    >>> fig = plot_history(clf, "curves.png")  # doctest: +SKIP
    """
    final = final_estimator(estimator)
    history = getattr(final, "history_", None)
    if not history:
        raise ValueError(
            f"plot_history needs a fitted estimator with a non-empty history_; "
            f"{type(final).__name__} has none. Fit an sknn estimator (or a "
            "Pipeline ending in one) first."
        )
    # matplotlib falls back to the Agg backend by itself without a display
    plt = require("matplotlib.pyplot", "plot_history", extra="plot")
    epochs = [row["epoch"] for row in history]
    panels = [("loss", "Loss")]
    if all("accuracy" in row for row in history):
        panels.append(("accuracy", "Accuracy"))
    elif all("val_r2" in row for row in history):  # a regressor's score
        panels.append(("r2", "R^2"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4),
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        if key in history[0]:
            ax.plot(epochs, [row[key] for row in history], marker="o",
                    markersize=3, label="train")
        if all(f"val_{key}" in row for row in history):
            ax.plot(epochs, [row[f"val_{key}"] for row in history], marker="o",
                    markersize=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{type(final).__name__} learning curves")
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig
