"""The documentation: what users read and run never points at development
files, parameter lists show no doubled braces (help() included), the gallery
is sphinx-gallery's, and, once built, the pages hold figures and output."""

import pydoc
import re
import runpy
from pathlib import Path

import pytest

import sknn
from sknn import cli, datasets, plotting, preprocessing

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"

#: what a user reads or runs (docs pages that other issues own are left out)
USER_FILES = sorted(
    [ROOT / "README.md", *sorted((ROOT / "sknn" / "cli").glob("*.py")),
     ROOT / "sknn" / "datasets.py"]
    + [p for p in DOCS.glob("*.rst")]
    + list((ROOT / "examples").glob("*")))

OWN_OBJECTS = [preprocessing.PixelScaler, datasets.load_digits_or_mnist,
               datasets.load_mnist, datasets.load_image_folder, datasets.load_csv,
               datasets.csv_has_header, plotting.plot_history, cli.main]

@pytest.mark.parametrize("obj", OWN_OBJECTS, ids=lambda o: o.__name__)
def test_no_doubled_braces_in_help(obj):
    assert "{{" not in pydoc.render_doc(obj, renderer=pydoc.plaintext)


@pytest.mark.parametrize("obj", [sknn.MLPClassifierTorch, sknn.CNNClassifier],
                         ids=lambda o: o.__name__)
def test_no_doubled_braces_in_estimator_help(obj):
    assert "{{" not in pydoc.render_doc(obj, renderer=pydoc.plaintext)


@pytest.mark.parametrize("path", USER_FILES, ids=lambda p: p.name)
def test_user_files_never_point_at_the_development_data(path):
    text = path.read_text(errors="replace")
    assert "shared/data" not in text and "SKNN_MNIST_DIR" not in text


def test_conf_runs_the_gallery_with_sphinx_gallery():
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert "sphinx_gallery.gen_gallery" in conf["extensions"]
    assert conf["html_theme"] == "pydata_sphinx_theme"
    gallery = conf["sphinx_gallery_conf"]
    assert Path(gallery["examples_dirs"]) == ROOT / "examples"
    assert gallery["gallery_dirs"] == "auto_examples"
    assert "write_example_pages" not in conf  # the old hand-written pages


def test_keras_page_states_the_mappings_the_tests_check():
    text = (DOCS / "keras.rst").read_text()
    assert 'solver="sgd", learning_rate_init=0.01, momentum=0.0' in text
    assert "alpha = 2 * λ * B" in text
    assert "alpha=0.64" in text
    assert "n_iter_no_change=p - 1" in text


def _built(page):
    path = HTML / page
    if not path.is_file():
        pytest.skip(f"the docs are not built ({path}); run bash docs/build.sh")
    return path.read_text()


@pytest.mark.parametrize("page", [
    "index.html", "keras.html", "user_guide.html", "getting_started.html",
    "generated/sknn.preprocessing.PixelScaler.html",
    "generated/sknn.datasets.load_digits_or_mnist.html",
    "generated/sknn.MLPClassifierTorch.html",
    "generated/sknn.CNNClassifier.html"])
def test_built_pages_have_no_doubled_braces(page):
    assert "{{" not in _built(page)


@pytest.mark.parametrize("script", sorted(
    p.stem for p in (ROOT / "examples").glob("plot_*.py")))
def test_built_gallery_pages_show_output(script):
    html = _built(f"auto_examples/{script}.html")
    assert "sphx-glr-script-out" in html, "no printed output on the page"
    assert f"{script}.ipynb" in html, "no notebook download"


@pytest.mark.parametrize("script", ["plot_mnist_mlp", "plot_image_folder",
                                    "plot_mnist_cnn", "plot_grid_search"])
def test_built_gallery_pages_show_figures(script):
    html = _built(f"auto_examples/{script}.html")
    figures = re.findall(r'src="[^"]*sphx_glr_' + script + r'_\d+\.png"', html)
    assert figures, "no figure on the page"


@pytest.mark.parametrize("path", [ROOT / "README.md", DOCS / "getting_started.rst"],
                         ids=lambda p: p.name)
def test_mnist_training_comes_before_predicting_your_own_png(path):
    """The 8x8 digits are no model for a user's digit: the text trains on
    MNIST-style data first."""
    lines = path.read_text().splitlines()
    train = next(i for i, line in enumerate(lines)
                 if "sknn train --data" in line and "mnist" in line.lower())
    predict = next(i for i, line in enumerate(lines)
                   if "sknn predict" in line and ".png" in line)
    assert train < predict
