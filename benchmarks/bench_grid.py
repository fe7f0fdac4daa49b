"""Wall time of one architecture grid search, by system, in one run.

    python benchmarks/bench_grid.py              # 5 rounds (a few minutes)
    python benchmarks/bench_grid.py --rounds 1   # a smoke run

The grid: 6 ``hidden_layer_sizes`` candidates x 3 folds on sklearn's digits
(1,797 x 64, standardised), Adam, ``max_iter`` epochs (default 15, tol=0 so
every fit runs them all; sklearn's own early stop would otherwise cut some
fits short and not others), then the refit of the best candidate:
19 fits per search. The systems:

- sklearn's MLPClassifier with ``GridSearchCV(n_jobs=1)`` and ``n_jobs=2``
- MLPClassifierTorch with ``n_jobs=1`` and ``n_jobs=2``
- MLPClassifierTorch with ``n_jobs=-1`` under ``joblib.parallel_backend("dask")``
  on a ``LocalCluster`` of 2 worker processes x 1 thread on loopback

Warm workers: each system first runs the same search once (warm-up, not in the
table) so that the loky executor, which joblib reuses from one call to the next,
and the dask workers have imported torch and sknn and created their first
optimizer; the warm-up times are reported as the cold-start cost. Then the
systems run round by round, in a rotated order each round, so slow spells of a
shared machine hit every system. The table gives the median and the range.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings

# workers (loky, dask) inherit the environment: no ConvergenceWarning spam
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sknn import MLPClassifierTorch  # noqa: E402

warnings.filterwarnings("ignore", category=ConvergenceWarning)

GRID = {"hidden_layer_sizes": [(16,), (32,), (64,), (128,), (64, 32), (128, 64)]}

#: first optimizer of a fresh process, timed in a subprocess (torch._dynamo)
FIRST_OPTIMIZER = """
import os, sys, time, torch
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
p = [torch.nn.Parameter(torch.zeros(3))]
before = rss()
t = time.perf_counter(); torch.optim.Adam(p); first = time.perf_counter() - t
t = time.perf_counter(); torch.optim.Adam(p); second = time.perf_counter() - t
grow = rss() - before
print(first, second, grow, "torch._dynamo" in sys.modules)
"""


def data():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def search(estimator, n_jobs):
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return GridSearchCV(estimator, GRID, cv=cv, n_jobs=n_jobs)


def make_systems(max_iter, client):
    common = dict(max_iter=max_iter, tol=0.0, random_state=0)
    sk = MLPClassifier(**common)
    torch_est = MLPClassifierTorch(**common)
    # the first entry spawns the loky workers, so its warm-up call shows what a
    # fresh sknn worker pays (process start, importing torch, first optimizer)
    systems = {
        "MLPClassifierTorch, n_jobs=2": (torch_est, 2, None),
        "MLPClassifierTorch, n_jobs=1": (torch_est, 1, None),
        "sklearn MLPClassifier, n_jobs=2": (sk, 2, None),
        "sklearn MLPClassifier, n_jobs=1": (sk, 1, None),
        "sklearn MLPClassifier, n_jobs=1, BLAS 1 thread": (sk, 1, "blas1"),
    }
    if client is not None:
        systems["MLPClassifierTorch, dask LocalCluster 2x1"] = (torch_est, -1, "dask")
    return systems


def run(system, X, y):
    estimator, n_jobs, backend = system
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if backend is None:
            fitted = search(estimator, n_jobs).fit(X, y)
        elif backend == "blas1":
            # what loky gives each worker, here for the caller's process
            with threadpool_limits(limits=1):
                fitted = search(estimator, n_jobs).fit(X, y)
        else:
            with joblib.parallel_backend(backend):
                fitted = search(estimator, n_jobs).fit(X, y)
    return time.perf_counter() - start, fitted


def first_optimizer_cost():
    out = subprocess.run([sys.executable, "-c", FIRST_OPTIMIZER], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), out[3] == "True"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=15)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args(argv)

    X, y = data()
    print(f"python {' '.join(sys.argv)}")
    print(f"1-min load average at start: {os.getloadavg()[0]:.1f}")
    print(f"cores: {joblib.cpu_count()}, grid: {len(GRID['hidden_layer_sizes'])} "
          f"candidates x 3 folds + refit, max_iter={args.max_iter}, "
          f"{args.rounds} rounds\n")

    first, second, grow, dynamo = first_optimizer_cost()
    print(f"fresh process, first torch.optim.Adam: {first:.2f} s (second "
          f"{second * 1e3:.2f} ms), +{grow:.0f} MiB peak RSS, "
          f"torch._dynamo imported: {dynamo}")

    client = cluster = None
    cluster_start = float("nan")
    if not args.no_dask:
        from distributed import Client, LocalCluster

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        cluster_start = time.perf_counter() - start
        print(f"LocalCluster(2 processes x 1 thread) start: {cluster_start:.2f} s")

    systems = make_systems(args.max_iter, client)
    names = list(systems)
    cold, times, scores = {}, {name: [] for name in names}, {}
    try:
        for name in names:  # warm-up: spawns and imports, not in the table
            cold[name], fitted = run(systems[name], X, y)
            scores[name] = (fitted.best_params_["hidden_layer_sizes"],
                            fitted.best_score_)
        print("warm-up done; per-round seconds, in this order: " + "; ".join(names))
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                times[name].append(run(systems[name], X, y)[0])
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{times[n][-1]:.2f}" for n in names)
                + f"  (1-min load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()

    base = {"sklearn": statistics.median(times["sklearn MLPClassifier, n_jobs=1"]),
            "sknn": statistics.median(times["MLPClassifierTorch, n_jobs=1"])}
    print("\n| system | median (s) | range (s) | speed-up vs n_jobs=1 | "
          "first call (s) | best hidden, CV accuracy |")
    print("|---|---|---|---|---|---|")
    for name in names:
        med = statistics.median(times[name])
        ref = base["sklearn"] if name.startswith("sklearn") else base["sknn"]
        best, score = scores[name]
        print(f"| {name} | {med:.2f} | {min(times[name]):.2f}-"
              f"{max(times[name]):.2f} | {ref / med:.2f}x | {cold[name]:.2f} | "
              f"{best}, {score:.3f} |")
    # per-round ratios: the same slow spell hits both sides of each ratio
    pairs = [("MLPClassifierTorch, n_jobs=1", "MLPClassifierTorch, n_jobs=2"),
             ("sklearn MLPClassifier, n_jobs=1", "sklearn MLPClassifier, n_jobs=2"),
             ("sklearn MLPClassifier, n_jobs=1, BLAS 1 thread",
              "sklearn MLPClassifier, n_jobs=2"),
             ("sklearn MLPClassifier, n_jobs=1", "MLPClassifierTorch, n_jobs=1"),
             ("sklearn MLPClassifier, n_jobs=2", "MLPClassifierTorch, n_jobs=2"),
             ("MLPClassifierTorch, n_jobs=2",
              "MLPClassifierTorch, dask LocalCluster 2x1")]
    print()
    for a, b in pairs:
        if a in times and b in times:
            ratios = [tb / ta for ta, tb in zip(times[a], times[b])]
            print(f"time({b}) / time({a}): median {statistics.median(ratios):.2f} "
                  f"[{min(ratios):.2f}-{max(ratios):.2f}] per round")
    return 0


if __name__ == "__main__":
    np.random.seed(0)
    raise SystemExit(main())
