"""Sphinx configuration of the sknn documentation.

Build (warnings are errors): ``sphinx-build -W -b html docs docs/_build/html``
or ``bash docs/build.sh``. The example pages are generated from
``examples/plot_*.py`` at build time (text cells and code, not executed).
"""

import ast
import re
from pathlib import Path

import sknn

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

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
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
templates_path = ["_templates"]

autosummary_generate = True
# the estimators' own methods; scikit-learn's inherited and generated ones
# (score, set_*_request, ...) point at labels of sklearn's own docs
autodoc_default_options = {
    "members": "fit, partial_fit, predict, predict_proba, predict_log_proba",
}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3
html_theme = "alabaster"
html_theme_options = {"description": "scikit-learn neural networks on PyTorch"}
html_static_path = []

# ------------------------------------------------------------ example pages
def _cells(code):
    """(text, code) pairs of a script body split at its ``# %%`` lines."""
    cells = []
    for chunk in re.split(r"^# %%.*$", code, flags=re.MULTILINE):
        lines = chunk.strip("\n").splitlines()
        text = []
        while lines and (lines[0].startswith("# ") or lines[0] == "#"):
            text.append(lines.pop(0)[2:])
        body = "\n".join(lines).strip("\n")
        if text or body:
            cells.append(("\n".join(text), body))
    return cells


def _example_page(script):
    source = script.read_text()
    module = ast.parse(source)
    doc = ast.get_docstring(module, clean=True) or script.stem
    body = source[source.index('"""', source.index('"""') + 3) + 3:]
    parts = [f".. _example_{script.stem}:", "", doc.strip(), ""]
    for text, code in _cells(body):
        if text:
            parts += [text, ""]
        if code:
            parts += [".. code-block:: python", ""]
            parts += [f"    {line}" if line else "" for line in code.splitlines()]
            parts.append("")
    parts += [
        "Run it", "------", "",
        ".. code-block:: bash", "",
        f"    python examples/{script.name}",
        f"    SKNN_EXAMPLE_TINY=1 python examples/{script.name}  # seconds",
        "",
        f":download:`Download {script.name} <../../examples/{script.name}>`", "",
    ]
    return "\n".join(parts)


def write_example_pages(app=None):
    """docs/auto_examples/: an index and one page per examples/plot_*.py."""
    out = DOCS / "auto_examples"
    out.mkdir(exist_ok=True)
    scripts = sorted((ROOT / "examples").glob("plot_*.py"))
    readme = (ROOT / "examples" / "README.txt").read_text()
    index = [".. _examples:", "", readme.strip(), "", ".. toctree::",
             "   :maxdepth: 1", ""]
    index += [f"   {s.stem}" for s in scripts]
    pages = {"index.rst": "\n".join(index) + "\n"}
    for script in scripts:
        pages[f"{script.stem}.rst"] = _example_page(script)
    for name, text in pages.items():
        target = out / name
        # rewrite only on change, so incremental builds stay incremental
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    for stale in out.glob("plot_*.rst"):
        if stale.name not in pages:
            stale.unlink()


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


def setup(app):
    app.connect("autodoc-process-docstring", _escape_type_underscores, priority=100)
    app.connect("builder-inited", write_example_pages)
