"""
=====================================================
Comparing architectures with GridSearchCV
=====================================================

Three networks from the tutorials, compared by cross-validation:
784-512-512-10, a single hidden layer of 512 units, and 256-256. Because
:class:`sknn.MLPClassifierTorch` is a scikit-learn estimator, the comparison
is a :class:`~sklearn.model_selection.GridSearchCV` over
``hidden_layer_sizes`` inside a Pipeline, and ``cv_results_`` becomes the table
and the plot.
"""

# %%
# Data
# ----
# MNIST when ``SKNN_MNIST`` names a copy, else scikit-learn's 8x8 digits (the
# architectures keep their MNIST names; on the digits the input has 64 pixels).
import os

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.preprocessing import PixelScaler

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

data = load_digits_or_mnist()
X, y = data.images, data.target
# 3,000 images to search on and 2,000 to test (the digits have 1,797: 60/40)
n_train, n_test = (200, 100) if TINY else (3000, 2000)
if n_train + n_test > len(X):
    n_train, n_test = int(0.6 * len(X)), len(X) - int(0.6 * len(X))
X, X_test, y, y_test = train_test_split(
    X, y, train_size=n_train, test_size=n_test, stratify=y, random_state=0)

# %%
# The search
# ----------
architectures = {"784-512-512-10": (512, 512), "784-512-10": (512,),
                 "784-256-256-10": (256, 256)}
pipe = Pipeline([("pixels", PixelScaler(max_value=data.max_value)),
                 ("scale", StandardScaler()),
                 ("mlp", MLPClassifierTorch(max_iter=1 if TINY else 15,
                                            batch_size=64, random_state=0))])
search = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": list(architectures.values())},
                      cv=2 if TINY else 3, n_jobs=1)
search.fit(X, y)

# %%
# The table
# ---------
# The first fit of a fresh process (the first candidate's) also pays a
# one-time start-up: importing torch and skorch, which sknn imports on first
# use, and ``torch._dynamo`` (about 3.4 s in all on two quiet cores): its fit
# time is not the network's alone.
names = {v: k for k, v in architectures.items()}
results = pd.DataFrame({
    "architecture": [names[p["mlp__hidden_layer_sizes"]]
                     for p in search.cv_results_["params"]],
    "mean accuracy": search.cv_results_["mean_test_score"],
    "std": search.cv_results_["std_test_score"],
    "fit time (s)": search.cv_results_["mean_fit_time"],
    "rank": search.cv_results_["rank_test_score"],
}).sort_values("rank")
print(results.to_string(index=False, float_format="{:.4f}".format))
best = names[search.best_params_["mlp__hidden_layer_sizes"]]
print(f"best: {best}, held-out accuracy {search.score(X_test, y_test):.4f}")

# %%
# The plot
# --------
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.barh(results["architecture"], results["mean accuracy"], xerr=results["std"])
ax.set_xlabel("mean cross-validated accuracy")
ax.set_xlim(0, 1)
ax.set_title("Architecture comparison")
fig.tight_layout()
plt.show()
