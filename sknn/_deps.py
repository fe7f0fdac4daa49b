"""Optional dependencies: import one, or say which extra installs it.

sknn's core needs torch, skorch, scikit-learn, numpy, pandas and joblib; the
rest is optional, grouped in the extras of ``pyproject.toml``. Every module
that needs an optional package imports it through :func:`require`, so that a
missing one is one :class:`ImportError` naming what needed it and the
``pip install`` line that fixes it.
"""

import importlib

#: the extra that installs each optional top-level package
EXTRAS = {"onnx": "deploy", "onnxruntime": "deploy", "skl2onnx": "deploy",
          "safetensors": "deploy", "matplotlib": "plot", "PIL": "images"}

#: the name pip installs a top-level package under, where it differs
_DISTRIBUTIONS = {"PIL": "Pillow"}


def install_hint(extra):
    """The command that installs one of sknn's extras."""
    return f"pip install 'sknn[{extra}]'"


def require(module, purpose, extra=None):
    """Import an optional dependency, or raise an ImportError naming the extra.

    Parameters
    ----------
    module : str
        The module to import, such as ``'skl2onnx'`` or ``'matplotlib.pyplot'``.
    purpose : str
        What needs it, for the message: ``'sknn.to_onnx'``.
    extra : str, default=None
        The extra of ``pyproject.toml`` that installs it; by default the one
        :data:`EXTRAS` lists for its top-level package (``'deploy'`` for an
        unlisted one).

    Returns
    -------
    module : module
        The imported module.

    Raises
    ------
    ImportError
        If the module cannot be imported: "<purpose> needs the optional
        package '<name>', which is not installed. Install it with: pip install
        'sknn[<extra>]'".
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or EXTRAS.get(top, "deploy")
        raise ImportError(
            f"{purpose} needs the optional package "
            f"{_DISTRIBUTIONS.get(top, top)!r}, which is not installed. Install "
            f"it with: {install_hint(extra)}"
        ) from exc
