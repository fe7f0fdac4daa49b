"""precision='bfloat16' against float32 on this CPU: epoch time and accuracy.

    python benchmarks/bench_precision.py            # 5 rounds, 3 accuracy seeds
    python benchmarks/bench_precision.py --quick

1. Speed: the MLP 784-512-10 (60,000 MNIST-shaped rows, batch 128) and the
   default CNN (8,000 28x28 images, batch 64), one epoch per fit, sknn with
   precision='float32' and 'bfloat16' and a plain torch loop of the same net
   with and without ``torch.autocast("cpu", dtype=torch.bfloat16)``, in
   interleaved rounds; ratios bf16 / fp32 within each round.
2. Accuracy: the real MNIST test set split 8,000 / 2,000 (``SKNN_MNIST``: Keras'
   mnist.npz or a folder of the IDX files;
   skipped without it), 784-512-10, 10 epochs, both precisions, three seeds.

Whether bfloat16 pays depends on the CPU: with AVX-512 BF16 or AMX the matrix
products run natively; without, each bf16 product is emulated and slower.
``precision='auto'`` picks bfloat16 only where it is native.
"""

import argparse
import os
import statistics
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from sknn import CNNClassifier, MLPClassifierTorch
from sknn._training import _bf16_native

#: MNIST as sknn.datasets.load_mnist reads it (Keras' mnist.npz or a folder of
#: the IDX files), from SKNN_MNIST; the development checkout's copy otherwise
MNIST_DIR = Path(os.environ.get("SKNN_MNIST") or Path(__file__).resolve().parents[2]
                 / "shared" / "data" / "mnist").expanduser()
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def plain_mlp_epoch(X, y, bf16, batch_size=128):
    torch.manual_seed(0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.randperm(len(Xt))
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    start = time.perf_counter()
    for i in range(0, len(Xt), batch_size):
        idx = perm[i:i + batch_size]
        opt.zero_grad()
        with ctx():
            loss = loss_fn(model(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def sknn_epoch(make, X, y, precision):
    start = time.perf_counter()
    make(precision).fit(X, y)
    return time.perf_counter() - start


def fmt(values, unit=""):
    return (f"{statistics.median(values):.2f}{unit} "
            f"[{min(values):.2f}-{max(values):.2f}]")


def speed(rounds):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60_000)
    images = rng.random((8_000, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 8_000)

    def mlp(precision):
        return MLPClassifierTorch((512,), max_iter=1, batch_size=128, random_state=0,
                                  device="cpu", precision=precision)

    def cnn(precision):
        return CNNClassifier(max_iter=1, batch_size=64, random_state=0, device="cpu",
                             precision=precision)

    systems = {
        "MLP sknn": lambda p: sknn_epoch(mlp, X, y, p),
        "MLP plain loop": lambda p: plain_mlp_epoch(X, y, p == "bfloat16"),
        "CNN sknn": lambda p: sknn_epoch(cnn, images, labels, p),
    }
    rows = []
    for name, run in systems.items():
        run("float32")  # warm-up
        run("bfloat16")
        times = {"float32": [], "bfloat16": []}
        for _ in range(rounds):
            for precision in times:
                times[precision].append(run(precision))
        ratio = [b / f for b, f in zip(times["bfloat16"], times["float32"])]
        rows.append((name, fmt(times["float32"]), fmt(times["bfloat16"]),
                     fmt(ratio, "x")))
    print(f"\n### one epoch, float32 vs bfloat16, {rounds} interleaved rounds "
          f"(load average {os.getloadavg()[0]:.1f})\n")
    print("| net | float32 s | bfloat16 s | bf16 / fp32 |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def accuracy(seeds):
    if not MNIST_DIR.exists():
        print(f"\n(real MNIST not found at {MNIST_DIR}: accuracy skipped;"
              " set SKNN_MNIST to Keras' mnist.npz or a folder of the MNIST IDX "
              "files)")
        return
    from sknn.datasets import load_mnist

    _, (X, y) = load_mnist(MNIST_DIR)
    X = X.reshape(len(X), -1).astype(np.float32) / 255
    scores = {"float32": [], "bfloat16": []}
    for seed in range(seeds):
        for precision in scores:
            clf = MLPClassifierTorch((512,), max_iter=10, batch_size=128,
                                     random_state=seed, device="cpu",
                                     precision=precision).fit(X[:8000], y[:8000])
            scores[precision].append(clf.score(X[8000:], y[8000:]))
    gap = statistics.median(b - f for b, f in zip(scores["bfloat16"],
                                                  scores["float32"]))
    print(f"\n### real MNIST 8,000 / 2,000, 784-512-10, 10 epochs, seeds "
          f"0-{seeds - 1}\n")
    print("| precision | test accuracy per seed | median |")
    print("|---|---|---|")
    for precision, values in scores.items():
        print(f"| {precision} | {', '.join(f'{v:.4f}' for v in values)} | "
              f"{statistics.median(values):.4f} |")
    print(f"\nmedian of (bfloat16 - float32) per seed: {gap:+.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native bf16 on this CPU: {_bf16_native(torch.device('cpu'))}")
    speed(2 if args.quick else 5)
    accuracy(1 if args.quick else 3)


if __name__ == "__main__":
    main()
