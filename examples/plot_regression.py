"""
=====================================================
Regression: MLPRegressorTorch against MLPRegressor
=====================================================

:class:`~sknn.MLPRegressorTorch` is scikit-learn's
:class:`~sklearn.neural_network.MLPRegressor` trained by PyTorch: the same
parameters, the same loss (half the squared error plus the L2 term) and the
same fitted attributes, plus the ``history_`` of every epoch, with the
validation loss when ``early_stopping=True``.

Both regressors fit scikit-learn's diabetes data (442 patients, 10 features,
a disease-progression score) in the same Pipeline: the features standardized
by a ``StandardScaler``, and the target by a ``TransformedTargetRegressor``
(a network learns a target of mean 0 and standard deviation 1 much faster
than one of mean 152 and standard deviation 77). The scores are the median
over a few random splits and seeds, with their range.
"""

# %%
# Data and the two models
# -----------------------
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPRegressorTorch

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

X, y = load_diabetes(return_X_y=True)
if TINY:
    X, y = X[:200], y[:200]
SEEDS = [0] if TINY else [0, 1, 2, 3, 4]

# the same network and training for both: one hidden layer of 32 units, Adam
# at lr=0.01 on mini-batches of 32, early stopping on the validation R^2 of a
# held-out 15 % of the training data (the best epoch's weights are kept)
PARAMS = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, batch_size=32,
              alpha=1e-3, max_iter=3 if TINY else 300, early_stopping=True,
              validation_fraction=0.15, n_iter_no_change=20)


def make_model(kind, seed):
    if kind == "sknn":
        net = MLPRegressorTorch(**PARAMS, random_state=seed, progress_bar=False)
    else:
        net = MLPRegressor(**PARAMS, random_state=seed)
    return make_pipeline(StandardScaler(), TransformedTargetRegressor(
        regressor=net, transformer=StandardScaler()))


# %%
# R^2 and fit time, side by side
# ------------------------------
# For each seed: one train/test split, both models fitted on it (sknn first,
# then scikit-learn, so that the machine's load falls on both alike).
results = {"sknn": [], "sklearn": []}
fitted = {}
for seed in SEEDS:
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed)
    for kind in results:
        model = make_model(kind, seed)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        results[kind].append((model.score(X_test, y_test), seconds,
                              model[-1].regressor_.n_iter_))
        fitted[kind] = model[-1].regressor_  # the last seed's, for the curves

names = {"sknn": "MLPRegressorTorch", "sklearn": "MLPRegressor"}
print(f"{len(SEEDS)} splits; test R^2 median [min, max]; fit time; epochs")
for kind, rows in results.items():
    r2, seconds, epochs = (np.array(column) for column in zip(*rows))
    print(f"{names[kind]:18s} R^2 {np.median(r2):.3f} [{r2.min():.3f}, "
          f"{r2.max():.3f}]   {np.median(seconds):.2f} s   "
          f"{int(np.median(epochs))} epochs")

# %%
# The two report the same loss: ``loss_curve_`` is half the mean squared
# error (of the standardized target) plus the L2 term, per epoch, in both.
# sknn also keeps the validation loss of every epoch in ``history_``, where
# scikit-learn keeps only the validation R^2 (``validation_scores_``).
reg = fitted["sknn"]
print("epoch   loss  val_loss  val_r2")
for row in reg.history_[:5]:
    print(f"{row['epoch']:5d} {row['loss']:6.3f} {row['val_loss']:9.3f} "
          f"{row['val_r2']:7.3f}")
print(f"best validation R^2: sknn {reg.best_validation_score_:.3f}, "
      f"scikit-learn {fitted['sklearn'].best_validation_score_:.3f}")

# %%
# Learning curves
# ---------------
# Left: the training loss of both, and sknn's validation loss (the gap
# between training and validation loss is what early stopping watches).
# Right: the validation R^2 that both use for early stopping.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(fitted["sklearn"].loss_curve_, label="MLPRegressor: loss")
left.plot(reg.loss_curve_, label="MLPRegressorTorch: loss")
left.plot([row["val_loss"] for row in reg.history_], "--",
          label="MLPRegressorTorch: val_loss")
left.set_xlabel("epoch")
left.set_ylabel("half squared error (standardized target)")
left.legend()
right.plot(fitted["sklearn"].validation_scores_, label="MLPRegressor")
right.plot(reg.validation_scores_, label="MLPRegressorTorch")
right.set_xlabel("epoch")
right.set_ylabel("validation R^2")
right.legend()
fig.tight_layout()
plt.show()
