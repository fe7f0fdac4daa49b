"""
==========================================================
Searching hidden-layer sizes in parallel with GridSearchCV
==========================================================

:class:`sknn.MLPClassifierTorch` is a scikit-learn estimator, so comparing
architectures is a :class:`~sklearn.model_selection.GridSearchCV` over
``hidden_layer_sizes``. With ``n_jobs=2`` joblib runs the fits in two worker
processes; sknn gives each fit its share of the CPU (``cores // n_jobs`` torch
threads) so the workers do not fight over the cores. The same search runs on a
Dask cluster by wrapping ``fit`` in ``joblib.parallel_backend("dask")`` (see the
last cell). The results become a table (``cv_results_``) and a plot of the mean
cross-validated accuracy of each architecture.
"""

# %%
# Data
# ----
# scikit-learn's 8 x 8 digits: 1,797 images, 64 pixels, 10 classes.
import os
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

X, y = load_digits(return_X_y=True)
if TINY:
    X, y = X[:300], y[:300]

# %%
# The grid
# --------
# Six architectures, one and two hidden layers. ``tol=0`` makes every fit run
# its ``max_iter`` epochs, so fit times compare like with like (and each fit
# ends with a ConvergenceWarning, silenced here).
warnings.filterwarnings("ignore", category=ConvergenceWarning)
architectures = [(16,), (32,), (64,), (128,), (64, 32), (128, 64)]
if TINY:
    architectures = architectures[:2]

pipe = make_pipeline(
    StandardScaler(),
    MLPClassifierTorch(max_iter=2 if TINY else 30, tol=0.0, random_state=0),
)
search = GridSearchCV(
    pipe,
    {"mlpclassifiertorch__hidden_layer_sizes": architectures},
    cv=StratifiedKFold(2 if TINY else 3, shuffle=True, random_state=0),
    # two worker processes; the tiny run (the test suite's) stays in-process
    n_jobs=1 if TINY else 2,
)
search.fit(X, y)

# %%
# ``cv_results_`` as a table
# --------------------------
# The first fit in each worker process pays a one-time start-up: sknn imports
# torch and skorch when it first needs them, and torch imports
# ``torch._dynamo`` for the first optimizer (about 3.4 s in all on two quiet
# cores, more on a busy machine). That shows as a longer mean fit time for the
# first architecture, not as a slower network.
results = pd.DataFrame(search.cv_results_)
table = pd.DataFrame({
    "hidden layers": [str(p) for p in results["param_mlpclassifiertorch__"
                                              "hidden_layer_sizes"]],
    "mean accuracy": results["mean_test_score"],
    "std": results["std_test_score"],
    "mean fit time (s)": results["mean_fit_time"],
    "rank": results["rank_test_score"],
}).sort_values("rank")
print(table.to_string(index=False, float_format="{:.3f}".format))
print(f"best: {search.best_params_}, CV accuracy {search.best_score_:.3f}")

# %%
# Mean test score per architecture
# --------------------------------
order = table.sort_values("mean accuracy")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.barh(order["hidden layers"], order["mean accuracy"], xerr=order["std"],
        color="tab:blue", alpha=0.8)
ax.set_xlabel("mean cross-validated accuracy (3 folds)")
ax.set_ylabel("hidden_layer_sizes")
ax.set_xlim(max(0.0, order["mean accuracy"].min() - 0.1), 1.0)
ax.set_title("Architecture search on digits")
fig.tight_layout()
plt.show()

# %%
# The same search on a Dask cluster
# ---------------------------------
# Install the extra (``pip install "sknn[dask]"``), connect a client to a
# cluster and run the unchanged search under joblib's dask backend; each fit
# is a Dask task and uses the threads its worker was given (the nanny exports
# ``OMP_NUM_THREADS=1`` to worker processes). On a real cluster, give the
# client the scheduler's address: ``Client("tcp://scheduler-host:8786")``.
# Set ``SKNN_EXAMPLE_DASK=1`` to run this cell here, on a local cluster of two
# workers that live in this process (``processes=False``): worker *processes*
# would re-run this script on start-up, as any multiprocessing child re-imports
# a main script that has no ``if __name__ == "__main__":`` guard.
if os.environ.get("SKNN_EXAMPLE_DASK") == "1" and not TINY:
    import joblib
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
    print(f"on dask: best {search.best_params_}, CV accuracy "
          f"{search.best_score_:.3f}")
