"""
=====================================================
Searching architectures with the fused grid search
=====================================================

:class:`sknn.model_selection.GridSearchCV` is scikit-learn's
``GridSearchCV`` with one difference: the candidates x folds of an
:class:`sknn.MLPClassifierTorch` (here the last step of a Pipeline) train
together, as stacked networks, where they can. Each network is the one its own
fit would make, so ``cv_results_`` holds the same scores as scikit-learn's
search; only the time differs. This example compares six architectures and
two L2 strengths, and times the same search run one fit after another by
:class:`sklearn.model_selection.GridSearchCV`.
"""

# %%
# Data
# ----
# MNIST when ``SKNN_MNIST`` names a copy, else scikit-learn's 8x8 digits.
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import model_selection as sklearn_model_selection
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.model_selection import GridSearchCV

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

data = load_digits_or_mnist()
X = data.images.reshape(len(data.images), -1).astype(np.float32)
y = data.target
n = 300 if TINY else min(len(X), 4000)
X, y = X[:n], y[:n]

# %%
# The search
# ----------
# ``verbose=1`` prints how the grid was grouped: one stack per layer shape,
# each holding its candidates x folds.
sizes = [(32,), (64,), (128,), (256,), (128, 64), (256, 128)]
grid = {"mlp__hidden_layer_sizes": sizes, "mlp__alpha": [1e-4, 1e-2]}
pipe = Pipeline([("scale", StandardScaler()),
                 ("mlp", MLPClassifierTorch(max_iter=2 if TINY else 30,
                                            random_state=0))])
cv = 2 if TINY else 3
# the first fit in a process loads parts of torch: a one-epoch fit first keeps
# that out of both timings
MLPClassifierTorch(max_iter=1).fit(X[:50], y[:50])
tic = time.perf_counter()
search = GridSearchCV(pipe, grid, cv=cv, verbose=1).fit(X, y)
fused_time = time.perf_counter() - tic

# %%
# The same search, one fit after another
# --------------------------------------
tic = time.perf_counter()
plain = sklearn_model_selection.GridSearchCV(pipe, grid, cv=cv).fit(X, y)
plain_time = time.perf_counter() - tic
same = np.allclose(search.cv_results_["mean_test_score"],
                   plain.cv_results_["mean_test_score"], atol=1e-6)
print(f"fused search {fused_time:.1f} s, one fit after another {plain_time:.1f} s "
      f"({fused_time / plain_time:.2f}x); same scores: {same}")

# %%
# The table
# ---------
results = pd.DataFrame({
    "architecture": ["-".join(map(str, p["mlp__hidden_layer_sizes"]))
                     for p in search.cv_results_["params"]],
    "alpha": [p["mlp__alpha"] for p in search.cv_results_["params"]],
    "mean accuracy": search.cv_results_["mean_test_score"],
    "std": search.cv_results_["std_test_score"],
    "fit time (s)": search.cv_results_["mean_fit_time"],
    "rank": search.cv_results_["rank_test_score"],
}).sort_values("rank")
print(results.to_string(index=False, float_format="{:.4f}".format))
print("best:", search.best_params_)

# %%
# The plot
# --------
fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(9, 3.5),
                                  gridspec_kw={"width_ratios": [3, 1]})
for alpha, group in results.sort_values("architecture").groupby("alpha"):
    ax.errorbar(group["architecture"], group["mean accuracy"], yerr=group["std"],
                marker="o", capsize=3, label=f"alpha={alpha:g}")
ax.set_xlabel("hidden layers")
ax.set_ylabel("mean cross-validated accuracy")
ax.legend()
ax.set_title("Architectures")
ax_time.bar(["fused", "one by one"], [fused_time, plain_time])
ax_time.set_ylabel("search time (s)")
ax_time.set_title("Time")
fig.tight_layout()
plt.show()
