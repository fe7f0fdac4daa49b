"""Sphinx configuration of the sknn documentation.

Build (warnings are errors): ``bash docs/build.sh``. sphinx-gallery runs every
``examples/plot_*.py`` and puts its printed output and figures on its page,
with a download of the script and of a notebook. The examples run in full by
default (about a minute for all of them on two cores, on scikit-learn's digits
unless ``SKNN_MNIST`` names a copy of MNIST), so the pages show real results.
``SKNN_EXAMPLE_TINY=1`` runs them on 60 to 400 samples for one to three
epochs, a check of the build alone: every output and figure of such a page
then carries a note, beside it, that it comes from a tiny run.
"""

import os
import re
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

import sknn

DOCS = Path(__file__).resolve().parent

project = "sknn"
author = "the sknn developers"
copyright = "2026, the sknn developers"
release = sknn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = ["_templates"]

autosummary_generate = True
# the methods shown are listed in _templates/autosummary/class.rst: the
# estimators' own; scikit-learn's inherited and generated ones (score,
# set_*_request, ...) point at labels of sklearn's own docs
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3

# ------------------------------------------------------------------- theme
html_theme = "pydata_sphinx_theme"
html_title = f"sknn {release}"
html_static_path = ["_static"]
html_css_files = ["sknn.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    # the five guides in the bar, the rest under "More"
    "header_links_before_dropdown": 5,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc", "sg_download_links",
                                "sg_launcher_links"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# the left sidebar lists a section's pages: the single pages have none
html_sidebars = {page: [] for page in (
    "index", "getting_started", "keras", "user_guide", "training", "deploying",
    "benchmarks", "benchmarks_cnn", "parallel", "changelog")}

# --------------------------------------------------------- sphinx-gallery
sphinx_gallery_conf = {
    "examples_dirs": str(DOCS.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # link the names in the code to the API pages, and list each object's
    # examples on its API page (the class template's minigallery)
    "doc_module": ("sknn",),
    "reference_url": {"sknn": None},
    "backreferences_dir": "generated/backreferences",
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 0,
    # a failing example fails the build (with -W, its warnings too)
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "download_all_examples": False,
}

# the examples read these when sphinx-gallery runs them in this process
os.environ.setdefault("SKNN_EXAMPLE_TINY", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

# sphinx-gallery reruns only the examples whose source changed; a build in the
# other mode (tiny or full) or on other data (SKNN_MNIST) reruns them all, so
# that no page keeps the output of the other kind of run
_RUN_STAMP = DOCS / "auto_examples" / ".examples-run"
_RUN = (f"tiny={os.environ['SKNN_EXAMPLE_TINY'] == '1'} "
        f"mnist={os.environ.get('SKNN_MNIST', '')}")
sphinx_gallery_conf["run_stale_examples"] = (
    not _RUN_STAMP.is_file() or _RUN_STAMP.read_text() != _RUN)
# the examples run a fixed number of epochs on purpose (the tutorials' counts,
# tol=0 or a large n_iter_no_change), so every fit ends at max_iter: the
# ConvergenceWarning that says so is not worth a line on the page
warnings.filterwarnings("ignore", category=ConvergenceWarning)


# ----------------------------------------------------------- docstrings
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*[A-Za-z0-9])_(?=[,)\]])")


def _escape_type_underscores(app, what, name, obj, options, lines):
    """numpydoc inserts 'name : type' types as raw reST, where a fitted
    attribute in a shape such as '(n_features_in_,)' would read as a link
    target; escape the trailing underscore before numpydoc runs."""
    for i, line in enumerate(lines):
        if " : " in line:
            head, _, type_ = line.partition(" : ")
            escaped = _TRAILING_UNDERSCORE.sub(r"\1\\_", type_)
            lines[i] = f"{head} : {escaped}"


def _tiny_build():
    return os.environ.get("SKNN_EXAMPLE_TINY") == "1"


#: the note at the top of a gallery page built in tiny mode
_TINY_PAGE_NOTE = """
.. note::
   :class: sknn-tiny-run

   **A tiny run.** This page was built with ``SKNN_EXAMPLE_TINY=1``: the
   script ran on 60 to 400 samples for one to three epochs, so its printed
   accuracies, tables and curves show a quick check of the build, not the
   example's results. Run the script without ``SKNN_EXAMPLE_TINY``, or build
   the documentation with ``bash docs/build.sh``, for those.
"""

#: the note beside each output block and figure of such a page
_TINY_BLOCK_NOTE = """
.. rst-class:: sknn-tiny-run

   *Tiny run* (``SKNN_EXAMPLE_TINY=1``): 60 to 400 samples, one to three
   epochs. Not the example's result.

"""

# where sphinx-gallery puts a cell's printed output or its figures
_OUTPUT_OR_FIGURE = re.compile(
    r"^(\.\. rst-class:: sphx-glr-script-out|\.\. image-sg::|"
    r"\.\. rst-class:: sphx-glr-horizontal)")


def _note_tiny_runs(app, docname, source):
    """Mark a gallery page as a tiny or a full run (``<meta name="sknn-examples">``,
    which tests/test_docs.py reads) and, when tiny, say so at its top and
    beside every output block and figure."""
    if not docname.startswith("auto_examples/plot_"):
        return
    tiny = _tiny_build()
    source[0] = _mark_gallery_page(source[0], tiny)


def _mark_gallery_page(text, tiny):
    """The page source with the mode's meta tag and, when ``tiny``, the notes."""
    meta = f"\n.. meta::\n   :sknn-examples: {'tiny' if tiny else 'full'}\n\n"
    if not tiny:
        return meta + text
    lines = text.split("\n")
    out, in_block = [], False
    for line in lines:
        # a block ends at the next line that starts at column 0
        if in_block and line and not line[0].isspace():
            out.extend(_TINY_BLOCK_NOTE.split("\n"))
            in_block = False
        if _OUTPUT_OR_FIGURE.match(line):
            in_block = True
        out.append(line)
    if in_block:
        out.extend(_TINY_BLOCK_NOTE.split("\n"))
    text = "\n".join(out)
    # the page note after the title, which has an overline and an underline of '='
    match = re.search(r"^=+\n[^\n]+\n=+\n", text, flags=re.MULTILINE)
    if match:
        cut = match.end()
        text = text[:cut] + _TINY_PAGE_NOTE + text[cut:]
    return meta + text


def _stamp_run(app, exception):
    """Record which kind of run the gallery's cached output comes from."""
    if exception is None and _RUN_STAMP.parent.is_dir():
        _RUN_STAMP.write_text(_RUN)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_type_underscores, priority=100)
    app.connect("source-read", _note_tiny_runs)
    app.connect("build-finished", _stamp_run)
