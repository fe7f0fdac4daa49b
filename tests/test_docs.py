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


@pytest.mark.parametrize("obj", [sknn.MLPClassifierTorch, sknn.CNNClassifier,
                                 sknn.MLPRegressorTorch],
                         ids=lambda o: o.__name__)
def test_no_doubled_braces_in_estimator_help(obj):
    assert "{{" not in pydoc.render_doc(obj, renderer=pydoc.plaintext)


@pytest.mark.parametrize("path", USER_FILES, ids=lambda p: p.name)
def test_user_files_never_point_at_the_development_data(path):
    text = path.read_text(errors="replace")
    assert "shared/data" not in text and "SKNN_MNIST_DIR" not in text


#: a git commit hash: 7 to 40 hex digits with at least one letter and one digit
_COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")


@pytest.mark.parametrize("page", ["benchmarks.md", "benchmarks_cnn.md", "parallel.md"])
def test_benchmark_pages_are_user_documentation(page):
    """Commands a user can run, on data a user has; no development journal."""
    text = (DOCS / page).read_text()
    for journal in ("shared/data", "../shared", "/tmp/", "git worktree", "was lent",
                    "SKNN_MNIST_DIR", "this shared machine", "other engineers",
                    "the issue "):
        assert journal not in text, journal
    assert not re.search(r"\bcommits? [0-9a-f]{7}", text), "a commit hash"
    assert not _COMMIT_HASH.search(text), _COMMIT_HASH.search(text)
    scripts = set(re.findall(r"python (benchmarks/\w+\.py)", text))
    assert scripts, "no command to run"
    for script in scripts:
        assert (ROOT / script).is_file(), script


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
    "generated/sknn.MLPRegressorTorch.html",
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


#: where a built gallery page shows a cell's printed output or a figure
_OUTPUT_OR_FIGURE = re.compile(r'<div class="sphx-glr-script-out|'
                               r'<img [^>]*class\s*=\s*"sphx-glr-(?:single|multi)-img')
_CODE_CELL = '<div class="highlight-Python'
_TINY_NOTE = 'class="sknn-tiny-run'
GALLERY = sorted(p.stem for p in (ROOT / "examples").glob("plot_*.py"))


def _examples_run(html):
    match = re.search(r'<meta content="(tiny|full)" name="sknn-examples"', html)
    assert match, "the page does not say whether its example ran tiny or in full"
    return match.group(1)


def _tiny_notes_missing(html):
    """The outputs and figures of a page with no tiny-run note between them
    and the next code cell, and whether the page's own note is missing."""
    missing = []
    for block in _OUTPUT_OR_FIGURE.finditer(html):
        note = html.find(_TINY_NOTE, block.end())
        cell = html.find(_CODE_CELL, block.end())
        if note == -1 or cell != -1 and cell < note:
            missing.append(html[block.start():block.start() + 120])
    first = _OUTPUT_OR_FIGURE.search(html)
    page_note = first is not None and _TINY_NOTE in html[:first.start()]
    return missing, not page_note


@pytest.mark.parametrize("script", GALLERY)
def test_built_gallery_page_says_beside_each_output_when_it_is_a_tiny_run(script):
    """docs/build.sh runs the examples in full; a build with
    SKNN_EXAMPLE_TINY=1 must say, beside every output and figure, that the
    numbers are not the example's, and a full build must not."""
    html = _built(f"auto_examples/{script}.html")
    assert _OUTPUT_OR_FIGURE.search(html), "no output or figure on the page"
    if _examples_run(html) == "full":
        assert _TINY_NOTE not in html
        return
    missing, no_page_note = _tiny_notes_missing(html)
    assert not no_page_note, "no tiny-run note at the top of the page"
    assert not missing, f"outputs or figures without a tiny-run note: {missing}"


def test_tiny_run_notes_follow_every_output_and_figure():
    """The conf.py hook itself, on a page as sphinx-gallery writes it, in
    both modes (a CI build shows only one of them)."""
    conf = runpy.run_path(str(DOCS / "conf.py"))
    page = "\n".join([
        ".. _sphx_glr_auto_examples_plot_x.py:", "", "=====", "Title", "=====", "",
        "Intro.", "", ".. code-block:: Python", "", "    print(1)", "", "",
        ".. rst-class:: sphx-glr-script-out", "", " .. code-block:: none", "",
        "    1", "", "", ".. GENERATED FROM PYTHON SOURCE LINES 9-10", "",
        ".. code-block:: Python", "", "    plt.show()", "", "",
        ".. image-sg:: /auto_examples/images/sphx_glr_plot_x_001.png",
        "   :alt: curves", "   :class: sphx-glr-single-img", ""])
    tiny = conf["_mark_gallery_page"](page, True)
    assert ":sknn-examples: tiny" in tiny
    assert tiny.count(".. rst-class:: sknn-tiny-run") == 2
    after_output = tiny.index(".. rst-class:: sknn-tiny-run")
    assert tiny.index("    1") < after_output < tiny.index("plt.show()")
    assert tiny.rindex(".. rst-class:: sknn-tiny-run") > tiny.index(".. image-sg::")
    assert tiny.index("A tiny run") < tiny.index("Intro.")
    full = conf["_mark_gallery_page"](page, False)
    assert ":sknn-examples: full" in full and "sknn-tiny-run" not in full


def test_built_image_folder_page_shows_what_its_text_promises():
    """The page promises 0.94 to 0.96: a full build must show it (a tiny one
    says beside the number that it is not, checked above)."""
    html = _built("auto_examples/plot_image_folder.html")
    assert "reaches a test accuracy of" in html
    if _examples_run(html) == "tiny":
        pytest.skip("a tiny build: its number is marked as such")
    printed = re.findall(r"test accuracy: (\d\.\d+)", html)
    assert printed and float(printed[0]) >= 0.9, printed


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
