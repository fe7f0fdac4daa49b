"""Benchmark CNNClassifier against a plain PyTorch loop on the same net and data.

    python benchmarks/bench_cnn.py                # full run (~10 min here)
    python benchmarks/bench_cnn.py --quick        # a smoke run

The net is the Keras CNN tutorial's Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10
(padding 'valid'), trained with Adam (lr 1e-3) in batches of 64 on the first
8,000 real MNIST images (../shared/data/mnist). Every measurement runs in a
fresh Python process, so the process-wide allocator settings of the malloc
experiment stay in the processes that ask for them, and page-fault counts
belong to one system. The systems are interleaved round by round; within a
round the order rotates.

Systems:

- plain: a hand-written loop, tensors preloaded, a permutation sliced per
  batch, fused Adam (the practical limit).
- sknn: ``CNNClassifier(...).fit`` (its per-epoch ``history_`` durations).
- skorch: a plain skorch ``NeuralNetClassifier`` with its default DataLoader.
- plain+CL, sknn+CL: the same with ``torch.channels_last`` memory format for
  the module and the input.
- plain+mallopt, sknn+mallopt: ``sknn.malloc.tune_malloc()`` at process start
  (mmap threshold 32 MiB, trim threshold 1 GiB).

Reported per system: seconds per epoch (median over rounds of each process's
median epoch, with the range), the ratio to the plain loop of the same round
(median and range), and per epoch the minor page faults and kernel (system)
CPU seconds of the training process.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

SYSTEMS = ["plain", "sknn", "skorch", "plain+CL", "sknn+CL", "plain+mallopt",
           "sknn+mallopt"]


# ------------------------------------------------------------------ worker
def _load(n_train):
    import numpy as np

    from sknn.datasets import load_mnist

    (X_train, y_train), (X_test, y_test) = load_mnist(MNIST_DIR)
    X = np.concatenate([X_train, X_test])[:n_train]
    y = np.concatenate([y_train, y_test])[:n_train].astype(np.int64)
    return X, y


def _net():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 3 * 64, 64), nn.ReLU(), nn.Linear(64, 10))


def _usage():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_stime


class _EpochUsage:
    """Minor page faults and kernel CPU seconds of each epoch."""

    def __init__(self):
        self.records = []

    def begin(self):
        self._start = _usage()

    def end(self):
        faults, stime = _usage()
        self.records.append((faults - self._start[0], stime - self._start[1]))


USAGE = _EpochUsage()


def _usage_callback():
    from skorch.callbacks import Callback

    class EpochUsage(Callback):
        def on_epoch_begin(self, net, **kwargs):
            USAGE.begin()

        def on_epoch_end(self, net, **kwargs):
            USAGE.end()

    return EpochUsage()


def _plain(X, y, epochs, batch_size, channels_last):
    import numpy as np
    import torch

    torch.manual_seed(0)
    Xt = torch.from_numpy(X.astype(np.float32) / 255).unsqueeze(1)
    yt = torch.from_numpy(y)
    model = _net()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        Xt = Xt.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(Xt)
    durations = []
    for _ in range(epochs):
        USAGE.begin()
        start = time.perf_counter()
        model.train()
        for index in torch.randperm(n).split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[index]), yt[index])
            loss.backward()
            opt.step()
        durations.append(time.perf_counter() - start)
        USAGE.end()
    return durations


def _sknn(X, y, epochs, batch_size, channels_last):
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from sknn import CNNClassifier

    class ChannelsLastCNN(CNNClassifier):
        """The experiment only: module and input in channels_last format."""

        def _input_tensor(self, X, device):
            return super()._input_tensor(X, device).contiguous(
                memory_format=torch.channels_last)

        def _build_module(self, n_features, n_outputs):
            return super()._build_module(n_features, n_outputs).to(
                memory_format=torch.channels_last)

    cls = ChannelsLastCNN if channels_last else CNNClassifier
    clf = cls(conv_filters=(32, 64, 64), dense_layer_sizes=(64,), padding="valid",
              batch_size=batch_size, max_iter=epochs, random_state=0, device="cpu",
              callbacks=[_usage_callback()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[..., None], y)  # uint8 (N, 28, 28, 1)
    return [record["duration"] for record in clf.history_]


def _skorch(X, y, epochs, batch_size, channels_last):
    import numpy as np
    import torch
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    net = NeuralNetClassifier(
        _net(), criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
        lr=1e-3, batch_size=batch_size, max_epochs=epochs, train_split=None,
        iterator_train__shuffle=True, device="cpu", verbose=0,
        callbacks=[_usage_callback()])
    net.fit((X.astype(np.float32) / 255)[:, None], y)
    return [row["dur"] for row in net.history]


def worker(config):
    """One measurement in this (fresh) process; prints a JSON line."""
    if config["mallopt"]:
        from sknn.malloc import tune_malloc

        assert tune_malloc(), "glibc did not accept the malloc settings"
    import torch

    torch.set_num_threads(config["threads"])
    X, y = _load(config["n_train"])
    run = {"plain": _plain, "sknn": _sknn, "skorch": _skorch}[config["system"]]
    durations = run(X, y, config["epochs"], config["batch_size"],
                    config["channels_last"])
    # as for the times, the first epoch's one-off costs are left out
    usage = USAGE.records[1:] if len(USAGE.records) > 1 else USAGE.records
    print(json.dumps({
        "durations": durations,
        "minflt_per_epoch": statistics.median(u[0] for u in usage),
        "stime_per_epoch": statistics.median(u[1] for u in usage),
    }))


# ------------------------------------------------------------------ driver
def _config(name, args):
    system, _, variant = name.partition("+")
    return dict(system=system, channels_last=variant == "CL",
                mallopt=variant == "mallopt", threads=args.threads,
                n_train=args.n_train, epochs=args.epochs,
                batch_size=args.batch_size)


def measure(name, args):
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)  # the default-malloc rows use glibc's defaults
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(_config(name, args))],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _epoch_time(result):
    # the first epoch includes one-off warm-up (allocator, kernels): skip it
    # when there are several
    durations = result["durations"]
    return statistics.median(durations[1:] if len(durations) > 1 else durations)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of each worker")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.quick:
        args.rounds, args.epochs, args.n_train = 1, 2, 1000
    systems = args.systems.split(",")
    if "plain" not in systems:
        systems.insert(0, "plain")
    print(f"torch threads per worker: {args.threads}; {args.n_train} MNIST images, "
          f"batch {args.batch_size}, {args.epochs} epochs, {args.rounds} rounds",
          flush=True)
    results = {name: [] for name in systems}
    for round_ in range(args.rounds):
        order = systems[round_ % len(systems):] + systems[:round_ % len(systems)]
        for name in order:
            results[name].append(measure(name, args))
            print(f"round {round_ + 1} {name:14s} "
                  f"{_epoch_time(results[name][-1]):.2f} s/epoch", flush=True)

    print()
    header = ("| system | s/epoch median [range] | ratio to plain median [range] "
              "| minor faults/epoch | sys s/epoch |")
    print(header)
    print("|---|---|---|---|---|")
    plain = [_epoch_time(r) for r in results["plain"]]
    for name in systems:
        times = [_epoch_time(r) for r in results[name]]
        ratios = [t / p for t, p in zip(times, plain)]
        faults = statistics.median(r["minflt_per_epoch"] for r in results[name])
        stime = statistics.median(r["stime_per_epoch"] for r in results[name])
        print(f"| {name} | {statistics.median(times):.2f} "
              f"[{min(times):.2f}-{max(times):.2f}] | "
              f"{statistics.median(ratios):.2f}x "
              f"[{min(ratios):.2f}-{max(ratios):.2f}] | "
              f"{faults:,.0f} | {stime:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
