"""Sphinx configuration of the sknn documentation.

Build (warnings are errors): ``bash docs/build.sh``. sphinx-gallery runs every
``examples/plot_*.py`` and puts its printed output and figures on its page,
with a download of the script and of a notebook. ``docs/build.sh`` runs them
in tiny mode (``SKNN_EXAMPLE_TINY=1``: seconds each) unless
``SKNN_EXAMPLE_TINY=0`` is set; ``SKNN_MNIST`` chooses MNIST over the digits
as it does for the scripts themselves.
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
os.environ.setdefault("SKNN_EXAMPLE_TINY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ["SKNN_EXAMPLE_TINY"] == "1":
    # one to three epochs always end at max_iter: not worth a line on the page
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


_TINY_NOTE = """
.. note::

   This page was built with ``SKNN_EXAMPLE_TINY=1``: the script ran on a few
   hundred samples for one to three epochs, so the printed accuracies and the
   curves show a quick run, not the tutorial's results: run the script
   (without ``SKNN_EXAMPLE_TINY``) for those.
"""


def _note_tiny_runs(app, docname, source):
    """Say on each gallery page when its output comes from a tiny run."""
    if (os.environ.get("SKNN_EXAMPLE_TINY") != "1"
            or not docname.startswith("auto_examples/plot_")):
        return
    text = source[0]
    # after the page title, which has an overline and an underline of '='
    match = re.search(r"^=+\n[^\n]+\n=+\n", text, flags=re.MULTILINE)
    if match:
        cut = match.end()
        source[0] = text[:cut] + _TINY_NOTE + text[cut:]


def setup(app):
    app.connect("autodoc-process-docstring", _escape_type_underscores, priority=100)
    app.connect("source-read", _note_tiny_runs)
