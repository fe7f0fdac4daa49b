"""``sknn train`` on a numeric target: the task a target asks for, the
regressor's target scaling, and the regression report.

A CSV's target column chooses the task (scikit-learn's ``type_of_target``):
continuous numbers train an :class:`~sknn.MLPRegressorTorch`, labels (text,
two values, a few integers) a classifier. Integers with many distinct values
could be either, so the command asks (``--task``) instead of guessing.

The regressor is trained on the standardized target (the mean and standard
deviation of the training split), as ``TransformedTargetRegressor`` with a
``StandardScaler`` would, and that affine map is then folded into the output
layer (``W * std``, ``b * std + mean``). The saved Pipeline is a plain
``Pipeline([scaler, MLPRegressorTorch])`` whose ``predict`` gives the target's
units, so ``.sknn`` files and ONNX export take it as any regressor; its
``loss_curve_`` stays in standardized units (the loss over the target's
variance).
"""

from sknn.cli.errors import InputError

#: a target of integers with more distinct values than this could be class
#: labels or numbers: the command asks for --task instead of guessing
MAX_GUESSED_CLASSES = 20

TASKS = ("classification", "regression")


def _is_numeric(y):
    return y.dtype.kind in "biuf"


def choose_task(data, task, target):
    """The task for the training data, and the line that announces a guess.

    Parameters
    ----------
    data : sknn.cli.data.TrainingData
    task : {'classification', 'regression'} or None
        ``--task``; None guesses from the target.
    target : str
        The target column's name, for the messages.

    Returns
    -------
    task : {'classification', 'regression'}
    line : str or None
        What the command says about its choice (None: the usual classifier).

    Raises
    ------
    InputError
        For image data or a text target with ``--task regression``, a
        continuous target with ``--task classification``, and an ambiguous
        target without ``--task``.
    """
    from sklearn.utils.multiclass import type_of_target

    if data.is_image:
        if task == "regression":
            raise InputError("--task regression: images train a classifier; a "
                             "regressor takes a CSV table with a numeric target")
        return "classification", None
    numeric = _is_numeric(data.y)
    if task == "regression":
        if not numeric:
            raise InputError(
                f"--task regression: the target column {target!r} holds text "
                f"(such as {data.y[0]!r}); a regressor needs numbers")
        return task, f"target {target!r}: training a regressor (--task regression)"
    if not numeric:
        return "classification", None
    kind = type_of_target(data.y)
    if task == "classification":
        if kind == "continuous":
            raise InputError(
                f"--task classification: the target column {target!r} holds "
                "continuous numbers, not class labels; leave out --task to "
                "train a regressor")
        return task, None
    if kind == "continuous":
        return "regression", (f"continuous target {target!r}: training a "
                              "regressor; --task classification to override")
    if kind == "multiclass":
        import numpy as np

        n_values = len(np.unique(data.y))
        if n_values > MAX_GUESSED_CLASSES:
            raise InputError(
                f"the target column {target!r} holds {n_values} distinct whole "
                "numbers: class labels or quantities? Choose with --task "
                "classification or --task regression")
    return "classification", None


def estimator(params):
    """The :class:`~sknn.MLPRegressorTorch` of ``sknn train``'s parameters."""
    from sknn import MLPRegressorTorch

    return MLPRegressorTorch(**params)


def standardize(y, target):
    """(the float64 target standardized, its mean, its standard deviation)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise InputError(f"the target column {target!r} holds infinite values")
    mean, std = float(y.mean()), float(y.std())
    if not std > 0:
        raise InputError(f"the target column {target!r} has one value "
                         f"({mean:g}) in the training split: nothing to regress")
    return (y - mean) / std, mean, std


def fold_target_scale(regressor, mean, std):
    """Make a regressor fitted on ``(y - mean) / std`` predict ``y``: its
    output layer becomes ``W * std`` and ``b * std + mean``."""
    import torch

    layer = regressor.net_.module_.linear_layers()[-1]
    with torch.no_grad():
        layer.weight.mul_(std)
        layer.bias.mul_(std).add_(mean)
    regressor._set_layer_attributes()  # coefs_ and intercepts_ follow the net
    return regressor


def report(y_true, y_pred, out):
    """Print R^2, MAE and RMSE on the held-out split; returns them."""
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    scores = {"R^2": r2_score(y_true, y_pred),
              "MAE": mean_absolute_error(y_true, y_pred),
              "RMSE": float(np.sqrt(mean_squared_error(y_true, y_pred)))}
    print(f"\nRegression report on the held-out {len(y_true)} samples:", file=out)
    for name, value in scores.items():
        print(f"{name + ':':6}{value:.6g}", file=out)
    return scores
