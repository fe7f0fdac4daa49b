"""Benchmark CNNClassifier against a plain PyTorch loop on the same net and data.

    python benchmarks/bench_cnn.py --part speed   # part 1 (~6 min here)
    python benchmarks/bench_cnn.py                # both parts
    python benchmarks/bench_cnn.py --quick        # a smoke run
    python benchmarks/bench_cnn.py --part accuracy  # default net vs 'same'

The net is the Keras CNN tutorial's Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10
(3x3 convolutions, padding 'valid', 93,322 parameters), trained with Adam (lr
1e-3) on the first 8,000 real MNIST images (``SKNN_MNIST``: Keras'
mnist.npz or a folder of the IDX files), on the CPU.
sknn's system is the *default* ``CNNClassifier`` (only ``batch_size``,
``max_iter`` and ``random_state`` set): its ``padding='auto'`` must resolve to
'valid' and build that very net, which the run checks before timing.

Part 1, speed, in one process: every system keeps its own model and optimizer
and the systems take turns epoch by epoch (the order rotates each round), so a
slow spell of the shared machine hits them alike. The first epoch of each is
left out. Each system runs at every batch size of ``--batch-sizes`` (default
64, the tutorials', and 'auto', sknn's default: ``min(200, n_samples)``, which
the plain loop uses too). Systems (``--systems``):

- plain+CL: a hand-written loop, tensors preloaded, a permutation sliced per
  batch, fused Adam (the practical limit), with the module and the input in
  ``torch.channels_last`` memory format: the format sknn uses on the CPU.
- sknn: the default ``CNNClassifier`` (``fit`` for the first epoch, then
  ``partial_fit``; the epoch time is ``history_``'s, measured as skorch
  measures it). On the CPU its input is a channels_last view of the NHWC
  images and its kernels are channels_last too.
- sknn:same: the same with ``padding='same'``, the default before
  ``padding='auto'`` (7x7 instead of 3x3 maps at the end: about twice the
  multiply-adds).
- plain: the plain loop in NCHW-contiguous memory.
- sknn+NCHW: sknn with input and kernels in NCHW-contiguous memory.
- skorch: a plain skorch ``NeuralNetClassifier`` with its default DataLoader
  (NCHW input).

With ``--malloc tuned`` the process first calls ``sknn.malloc.tune_malloc()``:
with glibc's defaults, batches of 200 make glibc hand the activation buffers
back to the system after each batch (about 450,000 minor page faults and 1 s of
kernel time per epoch, the plain loop as much as sknn), and which system of one
process is spared depends on what the others allocated before (see part 2).

The ratio of a system is taken to the plain loop of the same memory format,
batch size and round (plain+CL for sknn and sknn:same, plain for the NCHW
systems). The load average (1, 5, 15 min) is printed at the start, after each
round and at the end.

Part 2, the allocator: glibc's settings are process-wide, so each measurement
is a fresh process that trains ``--epochs`` epochs, with glibc's defaults or
after ``sknn.malloc.tune_malloc()`` (mmap threshold 32 MiB, trim threshold
1 GiB), processes interleaved round by round, at the first of
``--batch-sizes``.

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

#: MNIST as sknn.datasets.load_mnist reads it (Keras' mnist.npz or a folder of
#: the IDX files), from SKNN_MNIST; the development checkout's copy otherwise
MNIST_DIR = Path(os.environ.get("SKNN_MNIST") or Path(__file__).resolve().parents[2]
                 / "shared" / "data" / "mnist").expanduser()

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
def _resolve_batch(batch_size, n_samples):
    """The plain loop's batch size for sknn's ``batch_size`` value."""
    return min(200, n_samples) if batch_size == "auto" else int(batch_size)


def _n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def _systems(X, y, batch_size, names):
    """name -> callable running one training epoch and returning its seconds."""
    import numpy as np
    import torch
    from sklearn.exceptions import ConvergenceWarning
    from skorch import NeuralNetClassifier

    from sknn import CNNClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    plain_batch = _resolve_batch(batch_size, len(X))

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
            for index in torch.randperm(len(Xt)).split(plain_batch):
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

    def sknn(cls=CNNClassifier, **params):
        # the default estimator: nothing but the batch size, one epoch per call
        # and the seed are set
        clf = cls(batch_size=batch_size, max_iter=1, random_state=0, **params)
        images = X[..., None]  # uint8 (N, 28, 28, 1)

        def epoch():
            if hasattr(clf, "net_"):
                clf.partial_fit(images, y)
            else:
                clf.fit(images, y)
                if not params:
                    # the default must be the plain loop's net, or the
                    # comparison is void
                    assert clf.padding_ == "valid", clf.padding_
                    assert (_n_parameters(clf.net_.module_)
                            == _n_parameters(_net()) == 93_322)
            return clf.history_[-1]["duration"]

        return epoch

    def skorch():
        torch.manual_seed(0)
        net = NeuralNetClassifier(
            _net(), criterion=torch.nn.CrossEntropyLoss,
            optimizer=torch.optim.Adam, lr=1e-3, batch_size=plain_batch,
            max_epochs=1, train_split=None, iterator_train__shuffle=True,
            device="cpu", verbose=0)
        Xf = (X.astype(np.float32) / 255)[:, None]

        def epoch():
            net.partial_fit(Xf, y, epochs=1)
            return net.history[-1]["dur"]

        return epoch

    factories = {"plain": lambda: plain(False), "plain+CL": lambda: plain(True),
                 "sknn": sknn, "sknn:same": lambda: sknn(padding="same"),
                 "sknn+NCHW": lambda: sknn(NCHWCNN), "skorch": skorch}
    return {name: factories[name]() for name in names}


#: the plain loop each system is compared with: the same memory format
SAME_FORMAT = {"plain": "plain", "plain+CL": "plain+CL", "sknn": "plain+CL",
               "sknn:same": "plain+CL", "sknn+NCHW": "plain", "skorch": "plain"}


def _load_average():
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _row(name, times, ratios, faults=None, stime=None):
    row = (f"| {name} | {statistics.median(times):.2f} "
           f"[{min(times):.2f}-{max(times):.2f}] | "
           f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
    if faults is not None:
        row += f" | {statistics.median(faults):,.0f} | {statistics.median(stime):.2f}"
    return row + " |"


def speed(args):
    import torch

    if args.malloc == "tuned":
        from sknn.malloc import tune_malloc

        assert tune_malloc(), "glibc did not accept the malloc settings"
    torch.set_num_threads(args.threads)
    X, y = _load(args.n_train)
    names = list(args.systems)
    for name in names:
        if SAME_FORMAT[name] not in names:
            names.append(SAME_FORMAT[name])
    runs = [(name, batch) for batch in args.batch_sizes for name in names]
    label = {run: f"{run[0]} b={run[1]}" for run in runs}
    epochs = {}
    for batch in args.batch_sizes:
        epochs.update({(name, batch): epoch for name, epoch in
                       _systems(X, y, batch, names).items()})
    records = {run: [] for run in runs}
    for round_ in range(args.speed_epochs):
        order = runs[round_ % len(runs):] + runs[:round_ % len(runs)]
        for run in order:
            records[run] += _timed_epochs(epochs[run], 1)
        print(f"round {round_ + 1}: " + ", ".join(
            f"{label[run]} {records[run][-1][0]:.2f}" for run in runs)
            + f" ({_load_average()})", flush=True)
    print(f"\nend: {_load_average()}")
    print("\n| system | batch | s/epoch median [range] | ratio to the plain loop "
          "of the same memory format, median [range] | minor faults/epoch "
          "| sys s/epoch |\n|---|---|---|---|---|---|")
    for name, batch in runs:
        rows = records[name, batch][1:]  # the first epoch holds one-off warm-up
        times = [r[0] for r in rows]
        base = [r[0] for r in records[SAME_FORMAT[name], batch][1:]]
        ratios = [t / b for t, b in zip(times, base)]
        shown = batch if batch != "auto" else f"auto ({_resolve_batch(batch, len(X))})"
        print(f"| {name} | {shown} | {statistics.median(times):.2f} "
              f"[{min(times):.2f}-{max(times):.2f}] | "
              f"{statistics.median(ratios):.2f}x vs {SAME_FORMAT[name]} "
              f"[{min(ratios):.2f}-{max(ratios):.2f}] | "
              f"{statistics.median(r[1] for r in rows):,.0f} | "
              f"{statistics.median(r[2] for r in rows):.2f} |")


def _config(name, args):
    system, _, variant = name.partition("+")
    return dict(system=system, mallopt=variant == "mallopt", threads=args.threads,
                n_train=args.n_train, epochs=args.epochs,
                batch_size=args.batch_sizes[0])


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


def _batch_sizes(text):
    return [v if v == "auto" else int(v) for v in text.split(",")]


def _names(text):
    names = text.split(",")
    unknown = set(names) - set(SAME_FORMAT)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown systems {sorted(unknown)}; choose from {list(SAME_FORMAT)}")
    return names


def accuracy(args):
    """Test accuracy of the default net and of padding='same', seeds 0-2."""
    import numpy as np
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from sknn import CNNClassifier
    from sknn.datasets import load_mnist

    warnings.simplefilter("ignore", ConvergenceWarning)
    torch.set_num_threads(args.threads)
    (X_train, y_train), (X_test, y_test) = load_mnist(MNIST_DIR)
    X = np.concatenate([X_train, X_test])[..., None]
    y = np.concatenate([y_train, y_test])
    n_test = args.n_train // 4
    train, test = slice(0, args.n_train), slice(args.n_train, args.n_train + n_test)
    print("\n| padding | padding_ | parameters | test accuracy per seed | median |"
          "\n|---|---|---|---|---|")
    for padding in ("auto", "same"):
        scores = []
        for seed in range(3):
            clf = CNNClassifier(padding=padding, batch_size=args.batch_sizes[0],
                                max_iter=args.epochs, random_state=seed)
            clf.fit(X[train], y[train])
            scores.append(clf.score(X[test], y[test]))
        print(f"| {padding!r} | {clf.padding_!r} | "
              f"{_n_parameters(clf.net_.module_):,} | "
              f"{', '.join(f'{v:.4f}' for v in scores)} | "
              f"{statistics.median(scores):.4f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-epochs", type=int, default=7,
                        help="epochs of each system in part 1")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of processes in part 2")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of each process in part 2, and of each "
                             "fit of --part accuracy")
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=[64, "auto"],
                        metavar="64,auto",
                        help="batch sizes (ints or 'auto'); part 2 uses the first")
    parser.add_argument("--systems", type=_names, default=["sknn", "sknn:same"],
                        metavar="sknn,sknn:same",
                        help=f"systems of part 1, of {', '.join(SAME_FORMAT)}; "
                             "the plain loops they are compared with are added")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads")
    parser.add_argument("--malloc", choices=["default", "tuned"], default="default",
                        help="part 1 with glibc's malloc settings as they are, or "
                             "after sknn.malloc.tune_malloc()")
    parser.add_argument("--part", choices=["speed", "allocator", "both",
                                           "accuracy"],
                        default="both")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.quick:
        args.speed_epochs, args.rounds, args.epochs, args.n_train = 2, 1, 2, 1000
    if not MNIST_DIR.exists():
        parser.error(f"MNIST not found at {MNIST_DIR}: set SKNN_MNIST to Keras' "
                     "mnist.npz or a folder of the MNIST IDX files")
    import torch

    print(f"torch {torch.__version__}, {args.threads} thread(s); {args.n_train} "
          f"MNIST images, batch sizes {args.batch_sizes}; {_load_average()}",
          flush=True)
    if args.part in ("speed", "both"):
        print(f"\nPart 1: speed, {args.speed_epochs} epochs per system, "
              "interleaved epoch by epoch in one process, malloc "
              f"{args.malloc}", flush=True)
        speed(args)
    if args.part in ("allocator", "both"):
        print(f"\nPart 2: allocator, {args.rounds} rounds of one process per "
              f"system, {args.epochs} epochs each", flush=True)
        allocator(args)
    if args.part == "accuracy":
        print(f"\nAccuracy: {args.n_train} training and {args.n_train // 4} test "
              f"images, {args.epochs} epochs, batch {args.batch_sizes[0]}, "
              "random_state 0, 1, 2", flush=True)
        accuracy(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
