"""scikit-learn's private names sknn uses, imported in one place, and the
warning helper that attributes sknn's warnings to the caller.

scikit-learn keeps its parameter constraints (``Interval``, ``StrOptions``),
the ``_fit_context`` decorator and the validation and splitting helpers
private; every sknn
module takes them from here, as imbalanced-learn takes them from its
``sklearn_compat``, so that a scikit-learn release that moves one is a change
to this file alone.
"""

import os
import sys
import warnings

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import _check_method_params, _check_sample_weight

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _external_stacklevel():
    """The ``stacklevel`` that attributes a warning issued in the caller of
    :func:`warn_external` to the first frame outside the sknn package (what
    Python 3.12's ``skip_file_prefixes`` does; pandas' ``find_stack_level``)."""
    frame = sys._getframe(2)  # the caller of warn_external
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_external(message, category=UserWarning):
    """``warnings.warn`` attributed to the first frame outside sknn.

    A fit reaches sknn through scikit-learn's ``_fit_context`` wrapper, so the
    warnings of a fit are attributed to ``sklearn.base``, as scikit-learn's
    own fit warnings are attributed to a ``sklearn`` module: the filter that
    scikit-learn's examples use,
    ``warnings.filterwarnings("ignore", category=ConvergenceWarning,
    module="sklearn")``, silences sknn's too.
    """
    warnings.warn(message, category, stacklevel=_external_stacklevel())


__all__ = [
    "Interval",
    "Options",
    "StrOptions",
    "_check_method_params",
    "_check_partial_fit_first_call",
    "_check_sample_weight",
    "_fit_context",
    "_safe_indexing",
    "_safe_split",
    "warn_external",
]
