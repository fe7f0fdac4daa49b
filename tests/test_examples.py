"""Every gallery script in examples/ runs, in a fresh process, in tiny mode
(SKNN_EXAMPLE_TINY=1: 60 to 400 samples and one to three epochs)."""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))

#: lines an example prints when it does what it claims (checked when present)
EXPECTED = {
    "plot_mnist_mlp.py": ["test accuracy:", "epoch  1", "val_accuracy"],
    "plot_deep_mlp_validation.py": ["best validation accuracy:", "test accuracy:"],
    "plot_mnist_cnn.py": ["Conv2d(32, 64", "test accuracy:"],
    "plot_image_folder.py": ["X: (", "3072)", "circle", "square", "triangle",
                             "test accuracy:"],
    "plot_compare_architectures.py": ["784-512-512-10", "784-512-10",
                                      "784-256-256-10", "best:"],
    "plot_label_binarizer.py": ["each row has exactly one 1: True",
                                "predict_proba columns follow lb.classes_: True"],
    "plot_regression.py": ["MLPRegressorTorch  R^2", "MLPRegressor       R^2",
                           "val_loss", "best validation R^2: sknn"],
    "plot_persistence.py": ["identical predict_proba: True", "identical labels: True",
                            "loaded on cpu"],
}


def test_examples_folder_is_a_gallery():
    assert (EXAMPLES / "README.txt").is_file()
    assert SCRIPTS, "no examples/plot_*.py found"
    for script in SCRIPTS:
        source = script.read_text()
        doc = ast.get_docstring(ast.parse(source))
        assert doc, f"{script.name} has no docstring"
        title_lines = doc.strip().splitlines()[:3]
        over, title, under = title_lines
        assert set(over) == {"="} and over == under, (
            f"{script.name}: the docstring must open with an rst title")
        assert len(over) >= len(title.strip()), f"{script.name}: title overline short"
        assert "# %%" in source, f"{script.name} has no '# %%' cells"


def test_examples_get_their_digits_from_the_public_loader():
    """One loader, never a development path or a copy of its logic."""
    for script in SCRIPTS:
        source = script.read_text()
        for banned in ("load_mnist(", "shared", "SKNN_MNIST_DIR", "__file__"):
            assert banned not in source, f"{script.name} uses {banned!r}"
        if "mnist" in source.lower():  # MNIST where at hand: the one loader
            assert "load_digits_or_mnist()" in source, script.name


def _run(script, folder):
    env = dict(os.environ, SKNN_EXAMPLE_TINY="1", MPLBACKEND="Agg",
               PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every example's completed process, two at a time: a tiny run is mostly
    single-threaded interpreter start-up and imports, so two processes on two
    cores (one torch thread each) take about half the wall time."""
    folders = {s.name: tmp_path_factory.mktemp(s.stem) for s in SCRIPTS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {s.name: pool.submit(_run, s, folders[s.name]) for s in SCRIPTS}
        return {name: (f.result(), folders[name]) for name, f in futures.items()}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs_in_tiny_mode(script, runs):
    proc, folder = runs[script.name]
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in EXPECTED.get(script.name, []):
        assert text in proc.stdout, f"{text!r} not printed:\n{proc.stdout}"
    assert list(folder.iterdir()) == [], "the example left files behind"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SKNN_FULL_EXAMPLES") != "1",
                    reason="a full example run takes a minute or more; set "
                           "SKNN_FULL_EXAMPLES=1 to run it")
def test_image_folder_example_reaches_090_in_full_mode(tmp_path):
    """The Keras recipe, translated (momentum=0, alpha=2*lam*B), learns."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    env.pop("SKNN_EXAMPLE_TINY", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "plot_image_folder.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(proc.stdout.split("test accuracy:")[1].split()[0])
    assert accuracy >= 0.9, proc.stdout
