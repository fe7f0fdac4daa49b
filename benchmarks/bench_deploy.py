"""Deployment benchmark: single-row latency of the ONNX export in onnxruntime
against sknn's ``predict_proba`` and a bare torch forward, and the file sizes
of a 784-512-10 MLP as joblib, ``.sknn`` and ``.onnx``.

    python benchmarks/bench_deploy.py            # full run (about a minute)
    python benchmarks/bench_deploy.py --quick    # a smoke run

Models (fitted for one epoch on 2,000 random MNIST-shaped rows; latency does
not depend on how well they are trained):

- ``mlp``: MLPClassifierTorch 784-512-10;
- ``pipeline``: StandardScaler + the same MLP, as ``sknn train`` saves it;
- ``cnn``: CNNClassifier with the default Keras-tutorial net on 28x28x1.

"1 thread" rows run torch (or onnxruntime) on one intra-op thread; the others
keep the default (one per core). Each round times every system in turn
(``inner`` calls each, after warm-up calls), so slow spells of a shared machine
hit all systems alike; the tables give the median [min-max] over rounds and
the ratio to the bare torch forward of the same round. The load average is
printed at the start and the end.
"""

import argparse
import io
import os
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknn
from sknn import CNNClassifier, MLPClassifierTorch

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def fitted_models(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    mlp = MLPClassifierTorch((512,), max_iter=1, batch_size=128, random_state=0,
                             device="cpu").fit(X, y)
    pipeline = make_pipeline(StandardScaler(), MLPClassifierTorch(
        (512,), max_iter=1, batch_size=128, random_state=0, device="cpu")).fit(X, y)
    cnn = CNNClassifier(max_iter=1, batch_size=128, random_state=0, device="cpu",
                        input_shape=(28, 28, 1)).fit(X[:500], y[:500])
    return X, {"mlp": mlp, "pipeline": pipeline, "cnn": cnn}


def session(onx, threads):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(onx.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def systems(model, row):
    """name -> zero-argument callable predicting probabilities for ``row``."""
    estimator = model[-1] if hasattr(model, "steps") else model
    module = estimator.net_.module_.eval()
    tensor_input = estimator._input_tensor  # the estimator's own layout step
    onx = sknn.to_onnx(model, row)
    default, single = session(onx, 0), session(onx, 1)
    prepped = model[:-1].transform(row).astype(np.float32) if (
        hasattr(model, "steps")) else row

    def bare_forward():
        with torch.inference_mode():
            return torch.softmax(module(tensor_input(prepped, "cpu")), dim=1).numpy()

    # name -> (callable, torch threads while it runs: None keeps torch's default)
    return {
        "bare torch forward": (bare_forward, None),
        "bare torch forward, 1 thread": (bare_forward, 1),
        "sknn predict_proba": (lambda: model.predict_proba(row), None),
        "sknn predict_proba, 1 thread": (lambda: model.predict_proba(row), 1),
        "onnxruntime, default threads": (
            lambda: default.run(["probabilities"], {"X": row}), None),
        "onnxruntime, 1 thread": (
            lambda: single.run(["probabilities"], {"X": row}), None),
    }


@contextmanager
def torch_threads(n):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def summary(values, unit=1e3, digits=3):
    values = [v * unit for v in values]
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def ratio(values):
    return (f"{statistics.median(values):.2f}x "
            f"[{min(values):.2f}-{max(values):.2f}]")


def table(title, header, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def bench_latency(models, X, rounds, inner):
    row = X[:1]
    for name, model in models.items():
        fns = systems(model, row)
        for fn, threads in fns.values():  # first calls build kernels and caches
            with torch_threads(threads):
                for _ in range(10):
                    fn()
        times = {system: [] for system in fns}
        for _ in range(rounds):
            for system, (fn, threads) in fns.items():
                with torch_threads(threads):
                    fn()
                    start = time.perf_counter()
                    for _ in range(inner):
                        fn()
                    times[system].append((time.perf_counter() - start) / inner)
        bare = times["bare torch forward"]
        table(f"single-row latency, {name}, {rounds} rounds x {inner} calls",
              ["system", "ms per row", "ratio to bare forward"],
              [(system, summary(t), ratio([a / b for a, b in zip(t, bare)]))
               for system, t in times.items()])


def file_sizes(models, X):
    mlp = models["mlp"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for label, path, write in [
            ("joblib.dump (uncompressed)", folder / "m.joblib",
             lambda p: joblib.dump(mlp, p)),
            ("joblib, compress=3 (as `sknn train` saves)", folder / "c.joblib",
             lambda p: joblib.dump(mlp, p, compress=3)),
            ("sknn.save (.sknn)", folder / "m.sknn", lambda p: sknn.save(mlp, p)),
            ("sknn.to_onnx (.onnx)", folder / "m.onnx", lambda p: p.write_bytes(
                sknn.to_onnx(mlp, X[:1]).SerializeToString())),
        ]:
            write(path)
            rows.append((label, f"{os.path.getsize(path) / 2**20:.2f}"))
        start = time.perf_counter()
        loaded = sknn.load(folder / "m.sknn")
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        joblib.load(folder / "m.joblib")
        joblib_s = time.perf_counter() - start
    assert np.array_equal(loaded.predict_proba(X[:50]), mlp.predict_proba(X[:50]))
    n_weights = sum(p.numel() for p in mlp.net_.module_.parameters())
    buffer = io.BytesIO()
    torch.save(mlp.net_.optimizer_.state_dict(), buffer)
    table(f"file size of a fitted 784-512-10 MLP ({n_weights:,} weights, "
          f"{n_weights * 4 / 2**20:.2f} MiB as float32; its Adam state alone "
          f"{buffer.getbuffer().nbytes / 2**20:.2f} MiB)",
          ["format", "MiB"], rows)
    print(f"\nload time: sknn.load {load_s * 1e3:.0f} ms, joblib.load "
          f"{joblib_s * 1e3:.0f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; "
          f"1-min load average at start: {os.getloadavg()[0]:.1f}")
    X, models = fitted_models()
    file_sizes(models, X)
    rounds, inner = (2, 20) if args.quick else (7, 300)
    bench_latency(models, X, rounds, inner)
    print(f"\n1-min load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
