"""Shared fixtures: a seed for every test, tiny data sets, the MNIST folder, the
command line run in this process, the fused search's fit counts, the ``gpu``
marker."""

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

#: the real MNIST test set, beside the repository in CI; absent in a user's clone
MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same global RNG state."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module on one torch thread, restoring the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits, standardised: X float64 (1797, 64), y int (10 classes)."""
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits_bunch():
    """sklearn's digits as ``load_digits()`` returns them, raw: ``.images`` (1797, 8, 8)
    and ``.data`` (1797, 64) in 0..16, ``.target``. Read-only: copy before changing."""
    return load_digits()


@pytest.fixture(scope="module")
def mnist_dir():
    """The folder of the real MNIST IDX files; skips where it is not present."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the MNIST files are not at {MNIST_DIR} (CI provides them)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def run_main():
    """``run_main(argv)``: ``sknn.cli.main(argv)`` in this process, its
    arguments made strings (paths, numbers), returning (status, stdout,
    stderr)."""
    from sknn.cli import main

    def run(argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stdout", stdout)
            mp.setattr(sys, "stderr", stderr)
            status = main([str(a) for a in argv])
        return status, stdout.getvalue(), stderr.getvalue()

    return run


@pytest.fixture
def counted(monkeypatch):
    """How many fits sknn's fused search trained stacked and one by one."""
    from sknn import model_selection

    counts = {"stacked": 0, "single": 0}
    train, single = model_selection._train_stack, model_selection._fit_single

    def count_train(members, device):
        counts["stacked"] += len(members)
        return train(members, device)

    def count_single(*args):
        counts["single"] += 1
        return single(*args)

    monkeypatch.setattr(model_selection, "_train_stack", count_train)
    monkeypatch.setattr(model_selection, "_fit_single", count_single)
    return counts


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
