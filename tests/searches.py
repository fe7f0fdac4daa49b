"""What the fused-search tests share: the same search run by sknn and by
scikit-learn, and their ``cv_results_`` compared."""

import numpy as np
from sklearn import model_selection as sk_model_selection

from sknn import model_selection


def both(cls_name, estimator, grid, X, y, fit_params=None, **kwargs):
    """sknn's and scikit-learn's ``cls_name`` search, fitted on the same data
    with the same fit parameters: ``(ours, theirs)``."""
    ours = getattr(model_selection, cls_name)(estimator, grid, **kwargs)
    ours.fit(X, y, **(fit_params or {}))
    theirs = getattr(sk_model_selection, cls_name)(estimator, grid, **kwargs)
    theirs.fit(X, y, **(fit_params or {}))
    return ours, theirs


def assert_same_search(ours, theirs, rtol=1e-7, ranks=True):
    """The same ``cv_results_``: scores within ``rtol`` (and 1e-6), ranks
    equal unless ``ranks`` is False (near-ties may swap), times non-negative."""
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        if "time" in key:
            assert np.all(np.asarray(ours.cv_results_[key]) >= 0)
        elif key == "params":
            assert ours.cv_results_[key] == value
        elif key.startswith(("mean_", "std_", "split")):
            np.testing.assert_allclose(ours.cv_results_[key], value, rtol=rtol,
                                       atol=1e-6, err_msg=key)
        elif ranks or not key.startswith("rank_"):
            np.testing.assert_array_equal(ours.cv_results_[key], value)
