"""Wall time of the fused architecture search against scikit-learn's, in one run.

    python benchmarks/bench_search.py --mnist PATH    # MNIST IDX folder or mnist.npz
    python benchmarks/bench_search.py --rounds 1      # a smoke run: digits, diabetes
    python benchmarks/bench_search.py --only diabetes # the regressor alone

The search: ``Pipeline(StandardScaler, MLPClassifierTorch(max_iter=30))`` over
``hidden_layer_sizes`` in {(32,), (64,), (128,), (256,), (128, 64), (256, 128)}
x ``alpha`` in {1e-4, 1e-2}, cv=3 (36 fits and the refit), on sklearn's digits
(1,797 x 64) and on 4,000 MNIST rows (x 784; ``--mnist`` names a folder or
``mnist.npz`` that ``sknn.datasets.load_mnist`` reads; without it that part is
skipped); and the same grid over ``Pipeline(StandardScaler,
MLPRegressorTorch(max_iter=30))`` on sklearn's diabetes data (442 x 10, the
target standardized once, before the search; scored by R^2). The systems, all
with the same ``n_jobs``:

- ``fused``: ``sknn.model_selection.GridSearchCV`` over the sknn Pipeline;
- ``sklearn/sknn``: ``sklearn.model_selection.GridSearchCV`` over the same
  Pipeline (one fit after another);
- ``sklearn/MLP``: ``sklearn.model_selection.GridSearchCV`` over
  ``Pipeline(StandardScaler, sklearn.neural_network.MLPClassifier)`` (or
  ``MLPRegressor`` for the diabetes data);
- ``sklearn/MLP blas1``: the same with numpy's BLAS held to one thread
  (``threadpoolctl``), its faster setting on a loaded 2-core machine (sknn
  chooses its thread count itself).

Each system first runs once on the first data set of its kind, classifier or
regressor (warm-up: imports, first optimizer, joblib workers; not in the
table). Then rounds run the systems in a
rotated order, so slow spells of a shared machine hit each of them. The table gives the
median and the range of each system and the median of the per-round ratios
fused / other. The load average is printed before and after: on a shared
machine the figures are indicative.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

# joblib workers inherit the environment: no ConvergenceWarning spam
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import numpy as np  # noqa: E402
from sklearn import model_selection as sk  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sknn import MLPClassifierTorch, MLPRegressorTorch  # noqa: E402
from sknn import model_selection as fused  # noqa: E402

warnings.filterwarnings("ignore")

SIZES = [(32,), (64,), (128,), (256,), (128, 64), (256, 128)]
ALPHAS = [1e-4, 1e-2]
GRID = {"mlp__hidden_layer_sizes": SIZES, "mlp__alpha": ALPHAS}


def _pipe(mlp):
    return Pipeline([("scale", StandardScaler()), ("mlp", mlp)])


#: the networks of each kind of data: sknn's, scikit-learn's
NETWORKS = {"classifier": (MLPClassifierTorch, MLPClassifier),
            "regressor": (MLPRegressorTorch, MLPRegressor)}


def systems(device, kind="classifier"):
    ours, theirs = NETWORKS[kind]
    sknn_pipe = _pipe(ours(max_iter=30, random_state=0, device=device))
    sk_pipe = _pipe(theirs(max_iter=30, random_state=0))
    return {
        "fused": lambda n_jobs: fused.GridSearchCV(sknn_pipe, GRID, cv=3,
                                                   n_jobs=n_jobs),
        "sklearn/sknn": lambda n_jobs: sk.GridSearchCV(sknn_pipe, GRID, cv=3,
                                                       n_jobs=n_jobs),
        "sklearn/MLP": lambda n_jobs: sk.GridSearchCV(sk_pipe, GRID, cv=3,
                                                      n_jobs=n_jobs),
        "sklearn/MLP blas1": lambda n_jobs: _Blas1(
            sk.GridSearchCV(sk_pipe, GRID, cv=3, n_jobs=n_jobs)),
    }


class _Blas1:
    """A search run with numpy's BLAS held to one thread."""

    def __init__(self, search):
        self.search = search

    def fit(self, X, y):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self.search.fit(X, y)


def datasets(mnist):
    """(name, kind, X, y) of each data set."""
    X, y = load_digits(return_X_y=True)
    yield "digits", "classifier", X.astype(np.float32), y
    X, y = load_diabetes(return_X_y=True)
    yield "diabetes", "regressor", X.astype(np.float32), (y - y.mean()) / y.std()
    if mnist is None:
        return
    if not os.path.exists(mnist):
        print(f"(MNIST skipped: {mnist} does not exist)")
        return
    from sknn.datasets import load_mnist

    (X_train, y_train), (X_test, y_test) = load_mnist(mnist)
    X = np.concatenate([X_train, X_test]).reshape(-1, 784).astype(np.float32)
    y = np.concatenate([y_train, y_test])
    yield "MNIST 4k", "classifier", X[:4000], y[:4000]


def load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=None,
                        help="MNIST folder or mnist.npz (skipped when absent)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=None,
                        help="'digits', 'diabetes' or 'MNIST 4k'")
    parser.add_argument("--skip", action="append", default=[],
                        help="leave out a system (repeatable)")
    args = parser.parse_args(argv)
    print(f"load average before: {load()}  (cores: {os.cpu_count()})")
    rows = []
    warm = set()
    for name, kind, X, y in datasets(args.mnist):
        if args.only and args.only != name:
            continue
        runs = {k: v for k, v in systems(args.device, kind).items()
                if k not in args.skip}
        times = {s: [] for s in runs}
        scores = {}
        if kind not in warm:  # the first data set of a kind warms its systems up
            for make in runs.values():
                make(args.n_jobs).fit(X, y)
            warm.add(kind)
        for r in range(args.rounds):
            order = list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]
            for s in order:
                tic = time.perf_counter()
                search = runs[s](args.n_jobs).fit(X, y)
                times[s].append(time.perf_counter() - tic)
                scores[s] = getattr(search, "search", search).best_score_
            print(f"  {name} round {r + 1}: " + ", ".join(
                f"{s} {times[s][-1]:.2f} s" for s in runs), flush=True)
        for s in runs:
            ratios = [f / o for f, o in zip(times["fused"], times[s])]
            rows.append((name, s, statistics.median(times[s]), min(times[s]),
                         max(times[s]), statistics.median(ratios), scores[s]))
    print(f"load average after: {load()}")
    print()
    print(f"n_jobs={args.n_jobs}, device={args.device}, {args.rounds} rounds")
    print("| data | system | median (s) | range (s) | fused / system | best score |")
    print("|---|---|---|---|---|---|")
    for name, s, med, lo, hi, ratio, score in rows:
        print(f"| {name} | {s} | {med:.2f} | {lo:.2f}-{hi:.2f} | "
              f"{ratio:.2f}x | {score:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
