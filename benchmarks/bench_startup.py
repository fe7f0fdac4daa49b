"""Start-up: what a fresh Python process pays before sknn does anything.

    python benchmarks/bench_startup.py            # 7 interleaved rounds
    python benchmarks/bench_startup.py --rounds 3

Each command runs in a fresh process, the commands interleaved round by round:
``import sknn``, ``sknn --help``, ``import torch`` and ``import sklearn.neural_network``
for reference, and the first fit in a fresh process (imports included) of
sklearn's digits, hidden (100,), 20 epochs, with sknn and with sklearn.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

FIT = """
import warnings; warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
{imports}
clf = {estimator}(hidden_layer_sizes=(100,), max_iter=20, random_state=0{extra})
clf.fit(X / 16, y)
"""

COMMANDS = {
    "python -c 'import sknn'": [sys.executable, "-c", "import sknn"],
    "python -c 'from sknn import MLPClassifierTorch'": [
        sys.executable, "-c", "from sknn import MLPClassifierTorch"],
    "sknn --help": [shutil.which("sknn") or "sknn", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'import sklearn.neural_network'": [
        sys.executable, "-c", "import sklearn.neural_network"],
    "first fit, sknn (imports included)": [sys.executable, "-c", FIT.format(
        imports="from sknn import MLPClassifierTorch",
        estimator="MLPClassifierTorch", extra=", device='cpu'")],
    "first fit, sklearn (imports included)": [sys.executable, "-c", FIT.format(
        imports="from sklearn.neural_network import MLPClassifier",
        estimator="MLPClassifier", extra="")],
}


def run(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the file cache
        run(argv)
    times = {name: [] for name in COMMANDS}
    loads = []
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            times[name].append(run(argv))
        loads.append(os.getloadavg()[0])
    gap = [a - b for a, b in zip(times["first fit, sknn (imports included)"],
                                 times["first fit, sklearn (imports included)"])]
    print(f"\n### fresh-process start-up, {args.rounds} interleaved rounds "
          f"(load average {min(loads):.1f}-{max(loads):.1f})\n")
    print("| command | seconds, median [range] |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} "
              f"[{min(values):.2f}-{max(values):.2f}] |")
    print(f"| first fit: sknn minus sklearn, per round | "
          f"{statistics.median(gap):+.2f} [{min(gap):+.2f}-{max(gap):+.2f}] |")


if __name__ == "__main__":
    main()
