"""Benchmark MLPClassifierTorch against sklearn's MLPClassifier and a plain PyTorch
loop, in one run, systems interleaved round by round.

    python benchmarks/bench_mlp.py            # full run (several minutes)
    python benchmarks/bench_mlp.py --quick    # a smoke run
    python benchmarks/bench_mlp.py --digits 9 # the small-data fit ratio only
    python benchmarks/bench_mlp.py --mnist-shaped 5  # section 2 only
    python benchmarks/bench_mlp.py --regressor 7  # section 6 only

Sections:

1. sklearn's digits (1,797 x 64), hidden (100,), Adam, batch 200, 20 epochs: the
   whole fit's wall time (per-fit and per-step overhead shows on small data).
2. MNIST-shaped synthetic data (60,000 x 784), 784-512-10, Adam, batch 128:
   seconds per epoch.
3. The real MNIST images (8,000 train / 2,000 test, from ``SKNN_MNIST``:
   Keras' mnist.npz or a folder of the IDX files),
   784-512-10, Adam, batch 128, 10 epochs: test accuracy.
4. Prediction: single-row ``predict_proba`` latency and 10,000-row predict time.
5. Peak RSS of a fresh process fitting one epoch of section 2.
6. MLPRegressorTorch: seconds per epoch against a plain PyTorch loop of the
   same net (20,000 x 100 synthetic rows, 100-256-1, Adam, batch 128), and the
   whole fit against scikit-learn's MLPRegressor on the diabetes data (442 x
   10, hidden (100,), Adam, batch 200, 50 epochs).

Ratios are per round (system time / reference time in the same round), reported
as median [min-max], so slow spells of a shared machine hit both sides.
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
from sklearn.datasets import load_diabetes, load_digits, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from torch import nn

from sknn import MLPClassifierTorch, MLPRegressorTorch

#: MNIST as sknn.datasets.load_mnist reads it (Keras' mnist.npz or a folder of
#: the IDX files), from SKNN_MNIST; the development checkout's copy otherwise
MNIST_DIR = Path(os.environ.get("SKNN_MNIST") or Path(__file__).resolve().parents[2]
                 / "shared" / "data" / "mnist").expanduser()
warnings.filterwarnings("ignore", category=ConvergenceWarning)


# ------------------------------------------------------------------ systems
def plain_torch_fit(X, y, hidden, epochs, batch_size, lr=1e-3, fused=True, seed=0,
                    alpha=1e-4):
    """The practical limit: tensors preloaded, a permutation sliced per batch.

    The optimizer is configured as sknn configures it for the same training
    (scikit-learn's L2 term ``alpha`` as weight decay on the weights only, so
    two parameter groups), so the loops differ in their data path only.
    """
    torch.manual_seed(seed)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return _plain_loop(X, yt, int(yt.max()) + 1, nn.CrossEntropyLoss(), hidden,
                       epochs, batch_size, lr, fused, alpha)


def _plain_loop(X, yt, n_outputs, loss_fn, hidden, epochs, batch_size, lr, fused,
                alpha):
    """The plain loop itself: an MLP of ``hidden`` ReLU layers, Adam with
    the L2 term on the weights, ``loss_fn`` on each batch of a per-epoch
    permutation."""
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    layers, n_in = [], Xt.shape[1]
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    model = nn.Sequential(*layers, nn.Linear(n_in, n_outputs))
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, nn.Linear)]
    opt = torch.optim.Adam(
        [{"params": weights, "weight_decay": alpha / batch_size},
         {"params": biases, "weight_decay": 0.0}], lr=lr, fused=fused)
    n = len(Xt)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model


def sklearn_fit(X, y, hidden, epochs, batch_size):
    return MLPClassifier(hidden, max_iter=epochs, batch_size=batch_size,
                         random_state=0, tol=0.0).fit(X, y)


def sknn_fit(X, y, hidden, epochs, batch_size):
    return MLPClassifierTorch(hidden, max_iter=epochs, batch_size=batch_size,
                              random_state=0, tol=0.0, device="cpu").fit(X, y)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def one_thread(fn, *args):
    """Time ``fn`` with torch and the BLAS limited to one thread, which is what
    sknn picks for a net this small."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return timed(fn, *args)[0]
    finally:
        torch.set_num_threads(before)


def summary(values):
    return statistics.median(values), min(values), max(values)


def fmt_ratio(values):
    med, lo, hi = summary(values)
    return f"{med:.2f}x [{lo:.2f}-{hi:.2f}]"


def fmt_time(values, unit=1.0, digits=3):
    med, lo, hi = summary([v * unit for v in values])
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def table(title, header, rows):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def interleaved(systems, rounds, reference):
    """Run every system once per round; times per system and ratios to
    ``reference`` computed within each round."""
    times = {name: [] for name in systems}
    for _ in range(rounds):
        for name, fn in systems.items():
            times[name].append(fn())
    return interleaved_ratios(times, reference)


def interleaved_ratios(times, reference):
    """Per-round ratios of every system to ``reference``."""
    return times, {name: [t / r for t, r in zip(values, times[reference])]
                   for name, values in times.items()}


# ----------------------------------------------------------------- sections
def bench_digits(rounds):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    args = (X, y, (100,), 20, 200)
    systems = {
        "sklearn MLPClassifier": lambda: timed(sklearn_fit, *args)[0],
        "sklearn MLPClassifier, 1 BLAS thread": lambda: one_thread(sklearn_fit, *args),
        "plain torch loop (fused Adam)": lambda: timed(plain_torch_fit, *args)[0],
        "plain torch loop (fused Adam), 1 thread": lambda: one_thread(
            plain_torch_fit, *args),
        "plain torch loop (default Adam)": lambda: timed(
            lambda *a: plain_torch_fit(*a, fused=False), *args)[0],
        "sknn MLPClassifierTorch": lambda: timed(sknn_fit, *args)[0],
    }
    for fn in systems.values():  # warm-up: imports, first optimizer, caches
        fn()
    times, ratios = interleaved(systems, rounds, "sklearn MLPClassifier")
    _, ratios_1t = interleaved_ratios(times, "sklearn MLPClassifier, 1 BLAS thread")
    table(f"digits 1,797x64, hidden (100,), 20 epochs, {rounds} rounds",
          ["system", "fit s, median [range]", "ratio to sklearn",
           "ratio to sklearn, 1 BLAS thread"],
          [(n, fmt_time(times[n]), fmt_ratio(ratios[n]), fmt_ratio(ratios_1t[n]))
           for n in systems])
    return ratios["sknn MLPClassifierTorch"]


def bench_digits_ratio(rounds):
    """Issue 16.6: the small-data fit against scikit-learn's, float32 and
    float64 X, interleaved round by round (sknn, then scikit-learn, in the same
    round), each on one thread (what sknn picks for a net this small) and
    with the libraries' default threads."""
    import os

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rows = []
    ratios = {}
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        args = (Xd, y, (100,), 20, 200)
        systems = {
            "sklearn": lambda args=args: one_thread(sklearn_fit, *args),
            "sknn": lambda args=args: one_thread(sknn_fit, *args),
            "sklearn, default threads": lambda args=args: timed(
                sklearn_fit, *args)[0],
            "sknn, default threads": lambda args=args: timed(sknn_fit, *args)[0],
        }
        for fn in systems.values():  # warm-up
            fn()
        load_before = os.getloadavg()[0]
        times, one = interleaved(systems, rounds, "sklearn")
        _, default = interleaved_ratios(times, "sklearn, default threads")
        load_after = os.getloadavg()[0]
        name = np.dtype(dtype).name
        ratios[name] = one["sknn"]
        rows.append((name, "1 thread", fmt_time(times["sklearn"]),
                     fmt_time(times["sknn"]), fmt_ratio(one["sknn"]),
                     f"{load_before:.1f} -> {load_after:.1f}"))
        rows.append((name, "default", fmt_time(times["sklearn, default threads"]),
                     fmt_time(times["sknn, default threads"]),
                     fmt_ratio(default["sknn, default threads"]),
                     f"{load_before:.1f} -> {load_after:.1f}"))
    table(f"digits 1,797x64, hidden (100,), Adam, batch 200, 20 epochs, "
          f"{rounds} interleaved rounds",
          ["X dtype", "threads", "sklearn fit s, median [range]",
           "sknn fit s, median [range]", "sknn / sklearn per round",
           "load average (1 min)"], rows)
    return ratios


def bench_mnist_shaped(rounds, n=60_000, epochs=2):
    rng = np.random.default_rng(0)
    X = rng.standard_normal(size=(n, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=n)
    args = (X, y, (512,), epochs, 128)
    systems = {
        "plain torch loop (fused Adam)": lambda: timed(plain_torch_fit, *args)[0],
        "plain torch loop (default Adam)": lambda: timed(
            lambda *a: plain_torch_fit(*a, fused=False), *args)[0],
        "sknn MLPClassifierTorch": lambda: timed(sknn_fit, *args)[0],
        "sklearn MLPClassifier": lambda: timed(sklearn_fit, *args)[0],
    }
    times, ratios = interleaved(systems, rounds, "plain torch loop (fused Adam)")
    times = {k: [t / epochs for t in v] for k, v in times.items()}
    table(f"MNIST-shaped {n:,}x784, 784-512-10, Adam, batch 128, {rounds} rounds "
          f"of a {epochs}-epoch fit (whole fit time / epochs)",
          ["system", "s/epoch, median [range]", "ratio to plain loop (fused)"],
          [(k, fmt_time(times[k]), fmt_ratio(ratios[k])) for k in systems])
    return ratios["sknn MLPClassifierTorch"]


def load_real_mnist():
    if not MNIST_DIR.exists():
        return None
    from sknn.datasets import load_mnist

    _, (X, y) = load_mnist(MNIST_DIR)
    X = X.reshape(len(X), -1).astype(np.float32) / 255.0
    return X[:8000], y[:8000], X[8000:], y[8000:]


def bench_accuracy(epochs):
    data = load_real_mnist()
    if data is None:
        print(f"\n(real MNIST not found at {MNIST_DIR}: accuracy section skipped;"
              " set SKNN_MNIST to Keras' mnist.npz or a folder of the MNIST IDX "
              "files)")
        return
    X_train, y_train, X_test, y_test = data
    rows = []
    t, clf = timed(sklearn_fit, X_train, y_train, (512,), epochs, 128)
    rows.append(("sklearn MLPClassifier", f"{clf.score(X_test, y_test):.4f}",
                 f"{t:.1f}"))
    t, model = timed(plain_torch_fit, X_train, y_train, (512,), epochs, 128)
    with torch.inference_mode():
        pred = model(torch.from_numpy(X_test)).argmax(1).numpy()
    rows.append(("plain torch loop (fused Adam)", f"{np.mean(pred == y_test):.4f}",
                 f"{t:.1f}"))
    t, clf = timed(sknn_fit, X_train, y_train, (512,), epochs, 128)
    rows.append(("sknn MLPClassifierTorch", f"{clf.score(X_test, y_test):.4f}",
                 f"{t:.1f}"))
    table(f"real MNIST 8,000 train / 2,000 test, 784-512-10, {epochs} epochs",
          ["system", "test accuracy", "fit s"], rows)


def bench_predict(repeats):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=2000)
    X_big = rng.normal(size=(10_000, 784)).astype(np.float32)
    sk = sklearn_fit(X, y, (512,), 1, 128)
    ours = sknn_fit(X, y, (512,), 1, 128)
    module = ours.net_.module_.eval()
    row = X[:1]

    def bare_forward():
        with torch.inference_mode():
            return torch.softmax(module(torch.from_numpy(row)), dim=1).numpy()

    one_row = {
        "bare torch forward": bare_forward,
        "sklearn MLPClassifier": lambda: sk.predict_proba(row),
        "sknn MLPClassifierTorch": lambda: ours.predict_proba(row),
    }
    times = {name: [] for name in one_row}
    inner = 200
    for _ in range(repeats):
        for name, fn in one_row.items():
            fn()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) / inner)
    ratios = {n: [t / b for t, b in zip(times[n], times["bare torch forward"])]
              for n in one_row}
    big = {"sklearn MLPClassifier": lambda: sk.predict(X_big),
           "sknn MLPClassifierTorch": lambda: ours.predict(X_big)}
    big_times = {n: [timed(fn)[0] for _ in range(repeats)] for n, fn in big.items()}
    table(f"prediction, 784-512-10, {repeats} rounds",
          ["system", "1-row predict_proba ms", "ratio to bare forward",
           "10,000-row predict ms"],
          [(n, fmt_time(times[n], 1e3), fmt_ratio(ratios[n]),
            fmt_time(big_times[n], 1e3, 1) if n in big_times else "-")
           for n in one_row])
    return ratios["sknn MLPClassifierTorch"]


def _rss_child(system, queue):
    rng = np.random.default_rng(0)
    X = rng.standard_normal(size=(60_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=60_000)
    base = _vm_hwm_mib()
    # reset the peak-RSS mark (Linux): the peak below is that of the fit alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    {"sklearn MLPClassifier": sklearn_fit, "sknn MLPClassifierTorch": sknn_fit,
     "plain torch loop (fused Adam)": plain_torch_fit}[system](X, y, (512,), 1, 128)
    queue.put((base, _vm_hwm_mib()))


def _vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_rss():
    ctx = mp.get_context("spawn")
    rows = []
    for system in ("plain torch loop (fused Adam)", "sknn MLPClassifierTorch",
                   "sklearn MLPClassifier"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_rss_child, args=(system, queue))
        proc.start()
        base, peak = queue.get()
        proc.join()
        rows.append((system, f"{base:.0f}", f"{peak:.0f}"))
    table("peak RSS of a fresh process fitting one epoch of 60,000x784 "
          "(data itself: 188 MB)",
          ["system", "peak RSS before fit (imports + data), MiB",
           "peak RSS during fit, MiB"], rows)


# ---------------------------------------------------------------- regressor
def plain_torch_regression_fit(X, y, hidden, epochs, batch_size, lr=1e-3, seed=0,
                               alpha=1e-4):
    """The plain loop for a regressor: scikit-learn's half squared error,
    fused Adam with the L2 term as weight decay on the weights only (as sknn
    configures it), tensors preloaded, a permutation sliced per batch."""
    torch.manual_seed(seed)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32).reshape(len(X), -1))
    return _plain_loop(X, yt, yt.shape[1],
                       lambda out, target: 0.5 * nn.functional.mse_loss(out, target),
                       hidden, epochs, batch_size, lr, True, alpha)


def sknn_regression_fit(X, y, hidden, epochs, batch_size):
    return MLPRegressorTorch(hidden_layer_sizes=hidden, max_iter=epochs,
                             batch_size=batch_size, random_state=0, tol=0.0,
                             device="cpu", progress_bar=False).fit(X, y)


def sklearn_regression_fit(X, y, hidden, epochs, batch_size):
    return MLPRegressor(hidden_layer_sizes=hidden, max_iter=epochs,
                        batch_size=batch_size, random_state=0, tol=0.0).fit(X, y)


def _small_regression_sets():
    """scikit-learn's smallest regression set, and a synthetic one 11 times
    its size (both ship with scikit-learn: nothing is downloaded)."""
    return {"diabetes 442x10": load_diabetes(return_X_y=True),
            "friedman1 5,000x10": make_friedman1(n_samples=5_000, noise=1.0,
                                                 random_state=0)}


def bench_regressor(rounds, n=20_000, epochs=2):
    """Section 6: the regressor's epoch against the plain loop, and its small-
    data fit against scikit-learn's, interleaved round by round."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal(size=(n, 100), dtype=np.float32)
    y = (X[:, :10].sum(axis=1) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    args = (X, y, (256,), epochs, 128)
    systems = {
        "plain torch loop (fused Adam)": lambda: timed(
            plain_torch_regression_fit, *args)[0],
        "sknn MLPRegressorTorch": lambda: timed(sknn_regression_fit, *args)[0],
    }
    for fn in systems.values():  # warm-up
        fn()
    load_before = os.getloadavg()[0]
    times, ratios = interleaved(systems, rounds, "plain torch loop (fused Adam)")
    load_after = os.getloadavg()[0]
    times = {k: [t / epochs for t in v] for k, v in times.items()}
    table(f"regressor epoch: {n:,}x100 synthetic, 100-256-1, Adam, batch 128, "
          f"{rounds} rounds of a {epochs}-epoch fit (whole fit time / epochs), "
          f"load average {load_before:.1f} -> {load_after:.1f}",
          ["system", "s/epoch, median [range]", "ratio to plain loop"],
          [(k, fmt_time(times[k]), fmt_ratio(ratios[k])) for k in systems])

    ratios = {}
    for name, (X, y) in _small_regression_sets().items():
        X = StandardScaler().fit_transform(X)
        y = (y - y.mean()) / y.std()
        args = (X, y, (100,), 50, 200)
        systems = {
            "sklearn MLPRegressor": lambda args=args: timed(
                sklearn_regression_fit, *args)[0],
            "sknn MLPRegressorTorch": lambda args=args: timed(
                sknn_regression_fit, *args)[0],
            "sklearn MLPRegressor, 1 BLAS thread": lambda args=args: one_thread(
                sklearn_regression_fit, *args),
            "sknn MLPRegressorTorch, 1 thread": lambda args=args: one_thread(
                sknn_regression_fit, *args),
        }
        for fn in systems.values():  # warm-up
            fn()
        load_before = os.getloadavg()[0]
        times, ratios[name] = interleaved(systems, rounds, "sklearn MLPRegressor")
        _, ratios_1t = interleaved_ratios(times,
                                          "sklearn MLPRegressor, 1 BLAS thread")
        load_after = os.getloadavg()[0]
        table(f"regressor small-data fit: {name} (standardized), hidden (100,), "
              f"Adam, batch 200, 50 epochs, {rounds} rounds, load average "
              f"{load_before:.1f} -> {load_after:.1f}",
              ["system", "fit s, median [range]", "ratio to sklearn",
               "ratio to sklearn, 1 BLAS thread"],
              [(k, fmt_time(times[k]), fmt_ratio(ratios[name][k]),
                fmt_ratio(ratios_1t[k])) for k in systems])
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--regressor", type=int, metavar="ROUNDS", default=0,
                        help="only the regressor (section 6), in ROUNDS "
                             "interleaved rounds")
    parser.add_argument("--digits", type=int, metavar="ROUNDS", default=0,
                        help="only the digits ratio (float32 and float64 X), "
                             "in ROUNDS interleaved rounds")
    parser.add_argument("--mnist-shaped", type=int, metavar="ROUNDS", default=0,
                        help="only the epoch time on MNIST-shaped data (section "
                             "2), in ROUNDS interleaved rounds")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.digits:
        bench_digits_ratio(args.digits)
        return
    if args.regressor:
        bench_regressor(args.regressor)
        return
    if args.mnist_shaped:
        bench_mnist_shaped(args.mnist_shaped)
        return
    if args.quick:
        bench_digits(2)
        bench_mnist_shaped(1, n=6_000, epochs=1)
        bench_predict(2)
        bench_regressor(2, n=4_000, epochs=1)
        return
    bench_digits(7)
    bench_digits_ratio(9)
    bench_mnist_shaped(5)
    bench_predict(7)
    bench_accuracy(10)
    bench_rss()
    bench_regressor(7)


if __name__ == "__main__":
    main()
