"""Benchmark CNNClassifier against a plain PyTorch loop on the same net and data.

    python benchmarks/bench_cnn.py                # full run (~15 min here)
    python benchmarks/bench_cnn.py --quick        # a smoke run

The net is the Keras CNN tutorial's Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10
(padding 'valid'), trained with Adam (lr 1e-3) in batches of 64 on the first
8,000 real MNIST images (../shared/data/mnist), on the CPU.

Part 1, speed, in one process: every system keeps its own model and optimizer
and the systems take turns epoch by epoch (the order rotates each round), so a
slow spell of the shared machine hits them alike. The first epoch of each is
left out. Systems:

- plain: a hand-written loop, tensors preloaded, a permutation sliced per
  batch, fused Adam (the practical limit).
- plain+CL: the same with the module and the input in ``torch.channels_last``
  memory format.
- sknn: ``CNNClassifier`` (``fit`` for the first epoch, then ``partial_fit``;
  the epoch time is ``history_``'s, measured as skorch measures it). On the CPU
  its input is a channels_last view of the NHWC images and its kernels are
  channels_last too.
- sknn+NCHW: the same with input and kernels in NCHW-contiguous memory.
- skorch: a plain skorch ``NeuralNetClassifier`` with its default DataLoader
  (NCHW input).

Part 2, the allocator: glibc's settings are process-wide, so each measurement
is a fresh process that trains ``--epochs`` epochs, with glibc's defaults or
after ``sknn.malloc.tune_malloc()`` (mmap threshold 32 MiB, trim threshold
1 GiB), processes interleaved round by round.

Reported: seconds per epoch (median [range]), the ratio to the plain loop (or
to the default allocator) of the same round, and per epoch the minor page
faults and the kernel (system) CPU seconds of the process.
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


def _timed_epochs(epoch, n_epochs):
    """[(seconds, minor faults, system CPU seconds)] of ``n_epochs`` epochs."""
    records = []
    for _ in range(n_epochs):
        before = _usage()
        seconds = epoch()
        after = _usage()
        records.append((seconds, after[0] - before[0], after[1] - before[1]))
    return records


def worker(config):
    """One measurement in this (fresh) process; prints a JSON line."""
    if config["mallopt"]:
        from sknn.malloc import tune_malloc

        assert tune_malloc(), "glibc did not accept the malloc settings"
    import torch

    torch.set_num_threads(config["threads"])
    X, y = _load(config["n_train"])
    epoch = _systems(X, y, config["batch_size"], [config["system"]])[
        config["system"]]
    records = _timed_epochs(epoch, config["epochs"])
    rows = records[1:] if len(records) > 1 else records  # skip the warm-up
    print(json.dumps({
        "durations": [r[0] for r in records],
        "minflt_per_epoch": statistics.median(r[1] for r in rows),
        "stime_per_epoch": statistics.median(r[2] for r in rows),
    }))


# ------------------------------------------------------------------ driver
def _systems(X, y, batch_size, names):
    """name -> callable running one training epoch and returning its seconds."""
    import numpy as np
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from skorch import NeuralNetClassifier

    from sknn import CNNClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)

    def plain(channels_last):
        torch.manual_seed(0)
        Xt = torch.from_numpy(X.astype(np.float32) / 255).unsqueeze(1)
        yt = torch.from_numpy(y)
        model = _net()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            Xt = Xt.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        loss_fn = torch.nn.CrossEntropyLoss()

        def epoch():
            start = time.perf_counter()
            model.train()
            for index in torch.randperm(len(Xt)).split(batch_size):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[index]), yt[index])
                loss.backward()
                opt.step()
            return time.perf_counter() - start

        return epoch

    class NCHWCNN(CNNClassifier):
        """The experiment only: NCHW-contiguous input and kernels."""

        def _input_tensor(self, X, device):
            return super()._input_tensor(X, device).clone(
                memory_format=torch.contiguous_format)

        def _build_module(self, n_features, n_outputs):
            return super()._build_module(n_features, n_outputs).to(
                memory_format=torch.contiguous_format)

    def sknn(nchw):
        cls = NCHWCNN if nchw else CNNClassifier
        clf = cls(conv_filters=(32, 64, 64), dense_layer_sizes=(64,),
                  padding="valid", batch_size=batch_size, max_iter=1,
                  random_state=0, device="cpu")
        images = X[..., None]  # uint8 (N, 28, 28, 1)

        def epoch():
            if hasattr(clf, "net_"):
                clf.partial_fit(images, y)
            else:
                clf.fit(images, y)
            return clf.history_[-1]["duration"]

        return epoch

    def skorch():
        torch.manual_seed(0)
        net = NeuralNetClassifier(
            _net(), criterion=torch.nn.CrossEntropyLoss,
            optimizer=torch.optim.Adam, lr=1e-3, batch_size=batch_size,
            max_epochs=1, train_split=None, iterator_train__shuffle=True,
            device="cpu", verbose=0)
        Xf = (X.astype(np.float32) / 255)[:, None]

        def epoch():
            net.partial_fit(Xf, y, epochs=1)
            return net.history[-1]["dur"]

        return epoch

    factories = {"plain": lambda: plain(False), "sknn": lambda: sknn(False),
                 "skorch": skorch, "plain+CL": lambda: plain(True),
                 "sknn+NCHW": lambda: sknn(True)}
    return {name: factories[name]() for name in names}


def _row(name, times, ratios, faults=None, stime=None):
    row = (f"| {name} | {statistics.median(times):.2f} "
           f"[{min(times):.2f}-{max(times):.2f}] | "
           f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
    if faults is not None:
        row += f" | {statistics.median(faults):,.0f} | {statistics.median(stime):.2f}"
    return row + " |"


def speed(args):
    import torch

    torch.set_num_threads(args.threads)
    X, y = _load(args.n_train)
    names = ["plain", "plain+CL", "sknn", "sknn+NCHW", "skorch"]
    systems = _systems(X, y, args.batch_size, names)
    records = {name: [] for name in names}
    for round_ in range(args.speed_epochs):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            records[name] += _timed_epochs(systems[name], 1)
        print(f"epoch {round_ + 1}: " + ", ".join(
            f"{name} {records[name][-1][0]:.2f}" for name in names), flush=True)
    print("\n| system | s/epoch median [range] | ratio to plain median [range] "
          "| minor faults/epoch | sys s/epoch | ratio to the plain loop of the "
          "same memory format |\n|---|---|---|---|---|---|")
    # the first epoch holds one-off warm-up
    times = {name: [r[0] for r in records[name][1:]] for name in names}
    same_format = {"plain": "plain", "plain+CL": "plain+CL", "sknn": "plain+CL",
                   "sknn+NCHW": "plain", "skorch": "plain"}
    for name in names:
        rows = records[name][1:]
        ratios = [t / p for t, p in zip(times[name], times["plain"])]
        own = [t / p for t, p in zip(times[name], times[same_format[name]])]
        print(_row(name, times[name], ratios, [r[1] for r in rows],
                   [r[2] for r in rows])
              + f" {statistics.median(own):.2f}x vs {same_format[name]} "
              f"[{min(own):.2f}-{max(own):.2f}] |")


def _config(name, args):
    system, _, variant = name.partition("+")
    return dict(system=system, mallopt=variant == "mallopt", threads=args.threads,
                n_train=args.n_train, epochs=args.epochs, batch_size=args.batch_size)


def measure(name, args):
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)  # the default rows use glibc's defaults
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(_config(name, args))],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _epoch_time(result):
    # the first epoch includes one-off warm-up: left out when there are several
    durations = result["durations"]
    return statistics.median(durations[1:] if len(durations) > 1 else durations)


def allocator(args):
    names = ["plain", "plain+mallopt", "sknn", "sknn+mallopt"]
    results = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            results[name].append(measure(name, args))
            print(f"round {round_ + 1} {name:14s} "
                  f"{_epoch_time(results[name][-1]):.2f} s/epoch", flush=True)
    print("\n| process | s/epoch median [range] | ratio to default malloc "
          "median [range] | minor faults/epoch | sys s/epoch |\n|---|---|---|---|---|")
    for name in names:
        base = [_epoch_time(r) for r in results[name.split("+")[0]]]
        times = [_epoch_time(r) for r in results[name]]
        print(_row(name, times, [t / b for t, b in zip(times, base)],
                   [r["minflt_per_epoch"] for r in results[name]],
                   [r["stime_per_epoch"] for r in results[name]]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-epochs", type=int, default=7,
                        help="epochs of each system in part 1")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of processes in part 2")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of each process in part 2")
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads")
    parser.add_argument("--part", choices=["speed", "allocator", "both"],
                        default="both")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.quick:
        args.speed_epochs, args.rounds, args.epochs, args.n_train = 2, 1, 2, 1000
    print(f"torch {args.threads} thread(s); {args.n_train} MNIST images, batch "
          f"{args.batch_size}", flush=True)
    if args.part in ("speed", "both"):
        print(f"\nPart 1: speed, {args.speed_epochs} epochs per system, "
              "interleaved epoch by epoch in one process", flush=True)
        speed(args)
    if args.part in ("allocator", "both"):
        print(f"\nPart 2: allocator, {args.rounds} rounds of one process per "
              f"system, {args.epochs} epochs each", flush=True)
        allocator(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
