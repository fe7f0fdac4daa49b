"""The GPU checks of sknn, one table: run by ``benchmarks/gpu_check.sh``.

    python benchmarks/gpu_check.py                    # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick   # a dry run anywhere

1. The MLP 784-512-10 (60,000 MNIST-shaped rows, batch 128) and the Keras CNN
   Conv32-64-64 (60,000 28x28 images, batch 128): seconds per epoch of sknn and
   of a plain PyTorch loop of the same net on the same device (data on the
   device, fused Adam), interleaved rounds, ratio per round.
2. precision: the same epochs with 'bfloat16' and 'float16' against 'float32'.
3. GridSearchCV(n_jobs=2) sharing the one GPU against n_jobs=1: the same
   scores, and the wall time of each.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from torch import nn

from sknn import CNNClassifier, MLPClassifierTorch

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def plain_epoch(make_model, X, y, device, batch_size, precision="float32"):
    """One epoch of a plain loop over data already on the device."""
    torch.manual_seed(0)
    model = make_model().to(device)
    fused = torch.device(device).type in ("cpu", "cuda")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    loss_fn = nn.CrossEntropyLoss()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "float16" else None
    sync(device)
    start = time.perf_counter()
    perm = torch.randperm(len(X), device=X.device)
    for i in range(0, len(X), batch_size):
        idx = perm[i:i + batch_size]
        opt.zero_grad()
        with torch.autocast(torch.device(device).type, dtype=dtype,
                            enabled=dtype is not None):
            loss = loss_fn(model(X[idx]), y[idx])
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    sync(device)
    return time.perf_counter() - start


def sknn_epoch(make_estimator, X, y, device, precision="float32"):
    est = make_estimator(device=device, precision=precision)
    sync(device)
    start = time.perf_counter()
    est.fit(X, y)
    sync(device)
    return time.perf_counter() - start


def mlp_module():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))


def cnn_module():
    # Keras' Conv2D(32,3)-Pool-Conv2D(64,3)-Pool-Conv2D(64,3)-Dense(64), valid
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))


def fmt(values, unit=""):
    return (f"{statistics.median(values):.3f}{unit} "
            f"[{min(values):.3f}-{max(values):.3f}]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    device = args.device
    rounds = 2 if args.quick else 5
    n = 6_000 if args.quick else 60_000
    rows = []
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name(0)
        rows.append(("device", f"{name}, torch {torch.__version__}, bf16 "
                               f"{torch.cuda.is_bf16_supported()}", ""))
    else:
        rows.append(("device", f"{device} (dry run), torch {torch.__version__}", ""))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    images = rng.random((n, 28, 28), dtype=np.float32)
    Xd = torch.from_numpy(X).to(device)
    yd = torch.from_numpy(y).to(device)
    imgs_d = torch.from_numpy(images).reshape(n, 1, 28, 28).to(device)

    def mlp(**kw):
        return MLPClassifierTorch((512,), max_iter=1, batch_size=128, random_state=0,
                                  **kw)

    def cnn(**kw):
        return CNNClassifier(padding="valid", max_iter=1, batch_size=128,
                             random_state=0, **kw)

    nets = {
        "MLP 784-512-10": (lambda p: sknn_epoch(mlp, X, y, device, p),
                           lambda p: plain_epoch(mlp_module, Xd, yd, device, 128, p)),
        "CNN Conv32-64-64": (lambda p: sknn_epoch(cnn, images, y, device, p),
                             lambda p: plain_epoch(cnn_module, imgs_d, yd, device,
                                                   128, p)),
    }
    precisions = ["float32", "bfloat16"]
    if torch.device(device).type == "cuda":
        precisions.append("float16")
    for net, (ours, plain) in nets.items():
        for precision in precisions:  # warm-up: kernels, cuDNN autotuning
            ours(precision)
            plain(precision)
        times = {(who, p): [] for who in ("sknn", "plain") for p in precisions}
        for _ in range(rounds):
            for precision in precisions:
                times["sknn", precision].append(ours(precision))
                times["plain", precision].append(plain(precision))
        for precision in precisions:
            ratio = [a / b for a, b in zip(times["sknn", precision],
                                           times["plain", precision])]
            rows.append((f"{net}, {precision}: sknn / plain loop epoch",
                         fmt(ratio, "x"),
                         f"sknn {fmt(times['sknn', precision])} s, plain "
                         f"{fmt(times['plain', precision])} s"))
        for precision in precisions[1:]:
            speedup = [a / b for a, b in zip(times["sknn", "float32"],
                                             times["sknn", precision])]
            rows.append((f"{net}: sknn {precision} speed-up over float32",
                         fmt(speedup, "x"), ""))

    grid = {"hidden_layer_sizes": [(64,), (128,), (256,), (256, 128)]}
    searches = {}
    for n_jobs in (1, 2):
        search = GridSearchCV(
            MLPClassifierTorch(max_iter=3, random_state=0, device="auto"), grid,
            cv=2, n_jobs=n_jobs)
        start = time.perf_counter()
        search.fit(X[:20_000], y[:20_000])
        searches[n_jobs] = (time.perf_counter() - start, search)
    same = np.allclose(searches[1][1].cv_results_["mean_test_score"],
                       searches[2][1].cv_results_["mean_test_score"], atol=0.02)
    rows.append(("GridSearchCV n_jobs=2 on one device: scores as n_jobs=1",
                 str(same), f"n_jobs=1 {searches[1][0]:.1f} s, n_jobs=2 "
                            f"{searches[2][0]:.1f} s"))

    print("\n| check | result | detail |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
