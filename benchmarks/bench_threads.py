"""Threads under contention: the MNIST MLP fit beside 0, 1 and 2 busy processes.

    python benchmarks/bench_threads.py             # 5 rounds per load level
    python benchmarks/bench_threads.py --rounds 3

The fit: 8,000 MNIST images (the real test set from ``SKNN_MNIST``, Keras'
mnist.npz or a folder of the IDX files, when
present, else MNIST-shaped random data), 784-512-10, Adam, batch 200, 3 epochs.
Each round runs, in turn, sknn as it is (the ThreadTuner picks the thread count)
and sknn held to 1 thread and to 2 threads (tuner removed), so that all three
meet the same load; the busy processes are pure-Python loops, one per core
they occupy. The bar of the issue: the tuned fit takes at most 1.15x the better
of the 1- and 2-thread fits of the same round, at every load, and on a quiet
machine it is no slower than the fixed 2 threads sknn used before the tuner.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sknn import MLPClassifierTorch

#: MNIST as sknn.datasets.load_mnist reads it (Keras' mnist.npz or a folder of
#: the IDX files), from SKNN_MNIST; the development checkout's copy otherwise
MNIST_DIR = Path(os.environ.get("SKNN_MNIST") or Path(__file__).resolve().parents[2]
                 / "shared" / "data" / "mnist").expanduser()
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def load_data(n=8000):
    if MNIST_DIR.exists():
        from sknn.datasets import load_mnist

        _, (X, y) = load_mnist(MNIST_DIR)
        return (X.reshape(len(X), -1)[:n] / np.float32(255)).astype(np.float32), \
            y[:n], "real MNIST"
    rng = np.random.default_rng(0)
    return (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n),
            "MNIST-shaped random data")


def busy():
    while True:
        pass


def fit(X, y, threads=None):
    """One fit; ``threads`` None lets the tuner choose, else fixed."""
    callbacks = None if threads is None else [("thread_tuner", None)]
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        clf = MLPClassifierTorch((512,), max_iter=3, random_state=0, device="cpu",
                                 callbacks=callbacks).fit(X, y)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    used = sorted({row.get("threads", threads) for row in clf.net_.history})
    return elapsed, used


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    X, y, source = load_data()
    cores = os.cpu_count()
    print(f"torch {torch.__version__}, {cores} cores, torch threads "
          f"{torch.get_num_threads()}, data: {source} {X.shape}")
    fit(X, y)  # warm-up: imports, first optimizer, OpenMP pool
    ctx = mp.get_context("spawn")
    rows = []
    for n_busy in (0, 1, 2):
        procs = [ctx.Process(target=busy, daemon=True) for _ in range(n_busy)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        times = {"tuned": [], "1 thread": [], "2 threads": []}
        chosen = []
        try:
            for _ in range(args.rounds):
                t, used = fit(X, y)
                times["tuned"].append(t)
                chosen.append("/".join(map(str, used)))
                times["1 thread"].append(fit(X, y, 1)[0])
                times["2 threads"].append(fit(X, y, 2)[0])
        finally:
            load = os.getloadavg()[0]
            for p in procs:
                p.terminate()
            for p in procs:
                p.join()
        best = [min(a, b) for a, b in zip(times["1 thread"], times["2 threads"])]
        ratio = [t / b for t, b in zip(times["tuned"], best)]
        vs_two = [t / b for t, b in zip(times["tuned"], times["2 threads"])]
        rows.append((n_busy, load, times, ratio, vs_two, chosen))

    def fmt(values, unit=""):
        return (f"{statistics.median(values):.2f}{unit} "
                f"[{min(values):.2f}-{max(values):.2f}]")

    print(f"\n### MNIST MLP fit (8,000x784, 784-512-10, 3 epochs), "
          f"{args.rounds} interleaved rounds per load\n")
    print("| busy processes | load avg | tuned s | 1 thread s | 2 threads s | "
          "tuned / best of 1 and 2 | tuned / 2 threads | threads the tuner used |")
    print("|---|---|---|---|---|---|---|---|")
    for n_busy, load, times, ratio, vs_two, chosen in rows:
        print(f"| {n_busy} | {load:.1f} | {fmt(times['tuned'])} | "
              f"{fmt(times['1 thread'])} | {fmt(times['2 threads'])} | "
              f"{fmt(ratio, 'x')} | {fmt(vs_two, 'x')} | {', '.join(chosen)} |")


if __name__ == "__main__":
    main()
