"""The classes a ``.sknn`` file may name, and what each parameter may hold.

:data:`PARAMETERS` classifies every constructor parameter of every class in
:data:`SAFE_CLASSES`: plain data (allowed), something that reaches outside the
model (refused: a path, a cache folder, an object that writes files), an
object saved in its own entry (a Pipeline's steps, a
TransformedTargetRegressor's regressor and transformer), or a function named
from a fixed table of numpy ufuncs (:data:`UFUNCS`), with the reason. A
parameter not in this table is neither saved nor loaded (the test suite walks
the classes and fails on an unclassified one).

Composites nest in one fixed shape, so a file's depth is bounded: a model is
an estimator, a Pipeline or a TransformedTargetRegressor; a Pipeline's last
step may be a TransformedTargetRegressor, whose regressor is an sknn regressor
or a Pipeline ending in one (no composite inside), and whose transformer is
one of :data:`TRANSFORMERS`.
"""

import importlib

import numpy as np

from sknn._safe_checks import short

#: a parameter that holds plain data: numbers, strings, booleans, tuples,
#: dicts of them; each class's own parameter validation checks it at load
DATA = "data"
#: a parameter that must be None in a file (refused at save and at load)
REFUSED = "refused"
#: the Pipeline's steps, each an object checked on its own
STEPS = "steps"
#: an estimator held as a parameter, saved in its own entry as its class and
#: parameters (fit clones it) and checked on its own against this table
OBJECT = "object"
#: None or a function named from :data:`UFUNCS` (never imported by name)
UFUNC = "ufunc"

_CALLBACKS = (
    REFUSED, "skorch callback objects are code, and several write files "
    "(Checkpoint/TrainEndCheckpoint: dirname, f_params...; TensorBoard: a log "
    "folder; LoadInitState: reads a checkpoint); predictions do not depend "
    "on them")
_NETWORK = {
    "hidden_layer_sizes": (DATA, "layer widths (ints), checked against the "
                                 "weights before the network is built"),
    "activation": (DATA, "a name from a fixed list"),
    "solver": (DATA, "a name from a fixed list"),
    "alpha": (DATA, "a float"),
    "batch_size": (DATA, "an int or 'auto'"),
    "learning_rate": (DATA, "a name from a fixed list"),
    "learning_rate_init": (DATA, "a float"),
    "power_t": (DATA, "a float"),
    "max_iter": (DATA, "an int"),
    "shuffle": (DATA, "a bool"),
    "random_state": (DATA, "an int or None (a RandomState is not JSON)"),
    "tol": (DATA, "a float"),
    "verbose": (DATA, "an int: prints to the terminal, writes no file"),
    "warm_start": (DATA, "a bool"),
    "momentum": (DATA, "a float"),
    "nesterovs_momentum": (DATA, "a bool"),
    "early_stopping": (DATA, "a bool"),
    "validation_fraction": (DATA, "a float"),
    "beta_1": (DATA, "a float"),
    "beta_2": (DATA, "a float"),
    "epsilon": (DATA, "a float"),
    "n_iter_no_change": (DATA, "an int or inf"),
    "max_fun": (DATA, "an int"),
    "dropout": (DATA, "a float"),
    "batch_norm": (DATA, "a bool"),
    "weight_init": (DATA, "a name from a fixed list (looked up in sknn's own "
                          "table, never imported)"),
    "class_weight": (DATA, "a dict of numbers or 'balanced'"),
    "device": (DATA, "a torch device name, resolved at fit; never a path"),
    "precision": (DATA, "a name from a fixed list"),
    "callbacks": _CALLBACKS,
    "progress_bar": (DATA, "a bool: draws on the terminal, writes no file"),
}
_CNN = {
    "conv_filters": (DATA, "ints, checked against the weights"),
    "kernel_size": (DATA, "an int or a pair"),
    "pool_size": (DATA, "an int or a pair"),
    "dense_layer_sizes": (DATA, "ints, checked against the weights"),
    "input_shape": (DATA, "a tuple of ints"),
    "padding": (DATA, "a name from a fixed list"),
    "pool_last": (DATA, "a bool"),
    "augment": (DATA, "a dict of numbers (Keras ImageDataGenerator keys, checked "
                      "by ImageAugmenter.from_dict)"),
}
_COPY = (DATA, "a bool")
_UFUNC = (UFUNC, "None or one of numpy's log, exp, log1p, expm1, sqrt, square: "
                 "saved by its name and looked up in sknn's own table at load; "
                 "any other callable is refused (a file never names code)")
_KW_ARGS = (REFUSED, "keyword arguments of func: the table's ufuncs need none, "
                     "and out= would make every predict write into one array")

#: class name in the file -> {parameter: (kind, why)}: DATA, REFUSED, STEPS,
#: OBJECT or UFUNC
PARAMETERS = {
    "sknn.MLPClassifierTorch": dict(_NETWORK),
    "sknn.CNNClassifier": {
        **{k: v for k, v in _NETWORK.items() if k != "hidden_layer_sizes"}, **_CNN},
    "sknn.MLPRegressorTorch": {
        **{k: v for k, v in _NETWORK.items() if k != "class_weight"},
        "loss": (DATA, "a name from a fixed list")},
    "sknn.TargetEncoder": {"classes": (DATA, "labels (numbers or strings)")},
    "sknn.preprocessing.PixelScaler": {"max_value": (DATA, "a number or 'auto'")},
    "sklearn.pipeline.Pipeline": {
        "steps": (STEPS, "(name, object) pairs: each object is checked on its "
                         "own, against this table"),
        "transform_input": (DATA, "names (strings) of metadata routed to the "
                                  "transformers"),
        "memory": (REFUSED, "a folder (even relative, e.g. 'cache') or a "
                            "joblib.Memory: fit() writes pickles there and "
                            "unpickles any it finds, so a file naming a "
                            "poisoned folder runs code; predictions do not "
                            "depend on it"),
        "verbose": (DATA, "a bool: prints, writes no file"),
    },
    "sklearn.preprocessing.StandardScaler": {
        "copy": _COPY, "with_mean": (DATA, "a bool"), "with_std": (DATA, "a bool")},
    "sklearn.preprocessing.MinMaxScaler": {
        "feature_range": (DATA, "a pair of numbers"), "copy": _COPY,
        "clip": (DATA, "a bool")},
    "sklearn.preprocessing.MaxAbsScaler": {"copy": _COPY, "clip": (DATA, "a bool")},
    "sklearn.preprocessing.RobustScaler": {
        "with_centering": (DATA, "a bool"), "with_scaling": (DATA, "a bool"),
        "quantile_range": (DATA, "a pair of numbers"), "copy": _COPY,
        "unit_variance": (DATA, "a bool")},
    "sklearn.preprocessing.Normalizer": {
        "norm": (DATA, "a name from a fixed list"), "copy": _COPY},
    "sklearn.decomposition.PCA": {
        "n_components": (DATA, "a number, 'mle' or None"), "copy": _COPY,
        "whiten": (DATA, "a bool"), "svd_solver": (DATA, "a name from a fixed list"),
        "tol": (DATA, "a float"), "iterated_power": (DATA, "an int or 'auto'"),
        "n_oversamples": (DATA, "an int"),
        "power_iteration_normalizer": (DATA, "a name from a fixed list"),
        "random_state": (DATA, "an int or None")},
    "sklearn.preprocessing.FunctionTransformer": {
        "func": _UFUNC, "inverse_func": _UFUNC, "validate": (DATA, "a bool"),
        "accept_sparse": (DATA, "a bool"), "check_inverse": (DATA, "a bool"),
        "feature_names_out": (DATA, "None or 'one-to-one' (a callable is not "
                                    "JSON: refused at save)"),
        "kw_args": _KW_ARGS, "inv_kw_args": _KW_ARGS},
    "sklearn.compose.TransformedTargetRegressor": {
        "regressor": (OBJECT, "an MLPRegressorTorch, or a Pipeline of the "
                              "transformers here ending in one"),
        "transformer": (OBJECT, "None or one of the transformers here"),
        "func": _UFUNC, "inverse_func": _UFUNC,
        "check_inverse": (DATA, "a bool")},
}


#: name in the file -> (module, attribute) of the classes a file may name
SAFE_CLASSES = {
    "sknn.MLPClassifierTorch": ("sknn._mlp", "MLPClassifierTorch"),
    "sknn.CNNClassifier": ("sknn._cnn", "CNNClassifier"),
    "sknn.MLPRegressorTorch": ("sknn._regressor", "MLPRegressorTorch"),
    "sknn.TargetEncoder": ("sknn._targets", "TargetEncoder"),
    "sknn.preprocessing.PixelScaler": ("sknn.preprocessing", "PixelScaler"),
    "sklearn.pipeline.Pipeline": ("sklearn.pipeline", "Pipeline"),
    "sklearn.preprocessing.StandardScaler": ("sklearn.preprocessing",
                                             "StandardScaler"),
    "sklearn.preprocessing.MinMaxScaler": ("sklearn.preprocessing", "MinMaxScaler"),
    "sklearn.preprocessing.MaxAbsScaler": ("sklearn.preprocessing", "MaxAbsScaler"),
    "sklearn.preprocessing.RobustScaler": ("sklearn.preprocessing", "RobustScaler"),
    "sklearn.preprocessing.Normalizer": ("sklearn.preprocessing", "Normalizer"),
    "sklearn.decomposition.PCA": ("sklearn.decomposition", "PCA"),
    "sklearn.preprocessing.FunctionTransformer": ("sklearn.preprocessing",
                                                  "FunctionTransformer"),
    "sklearn.compose.TransformedTargetRegressor": (
        "sklearn.compose", "TransformedTargetRegressor"),
}

#: the sknn estimators among them (rebuilt from their weights)
ESTIMATORS = ("sknn.MLPClassifierTorch", "sknn.CNNClassifier",
              "sknn.MLPRegressorTorch")
#: those a TransformedTargetRegressor may wrap
REGRESSORS = ("sknn.MLPRegressorTorch",)
PIPELINE = "sklearn.pipeline.Pipeline"
TARGET_REGRESSOR = "sklearn.compose.TransformedTargetRegressor"
#: what a TransformedTargetRegressor's transformer may be
TRANSFORMERS = tuple(name for name in SAFE_CLASSES if name not in (
    *ESTIMATORS, PIPELINE, TARGET_REGRESSOR, "sknn.TargetEncoder"))

#: the functions a file may name (FunctionTransformer's and a
#: TransformedTargetRegressor's func and inverse_func), by their numpy name
UFUNCS = {f.__name__: f for f in (np.log, np.exp, np.log1p, np.expm1, np.sqrt,
                                  np.square)}


class ParameterRefused(ValueError):
    """A parameter that would let a model reach outside itself."""


def check_parameters(name, params, where):
    """``params`` as the other side takes them, or ParameterRefused for one
    the table does not allow: unclassified, set where it must be None, or a
    function outside :data:`UFUNCS`. ``where`` is 'save' (functions become
    their names) or 'load' (names become the table's functions)."""
    table = PARAMETERS[name]
    label = name.rsplit(".", 1)[1]
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise ParameterRefused(
            f"{label} has no parameter(s) {unknown} in sknn's safe format "
            "(the file comes from another version of scikit-learn or sknn, "
            "or was edited)")
    params = dict(params)
    for key, value in params.items():
        kind, why = table[key]
        if kind == REFUSED and value is not None:
            fix = ("set it to None first, e.g. model.set_params("
                   f"{key}=None) (in a Pipeline: <step>__{key}=None)"
                   if where == "save" else
                   "the file was edited to reach outside the model")
            raise ParameterRefused(
                f"{label}'s {key!r} must be None in an sknn safe file, got "
                f"{short(value)}: {why}. {fix[0].upper() + fix[1:]}")
        if kind == UFUNC and value is not None:
            params[key] = _ufunc(label, key, value, where)
    return params


def _ufunc(label, key, value, where):
    """A table function's name (at save) or the function a name stands for
    (at load)."""
    if where == "load":
        if isinstance(value, str) and value in UFUNCS:
            return UFUNCS[value]
        raise ParameterRefused(
            f"{label}'s {key!r} names {short(value)}, not one of the functions "
            f"a file may name ({', '.join(UFUNCS)})")
    for name, function in UFUNCS.items():
        if value is function:
            return name
    name = getattr(value, "__name__", None)
    shown = (f"the {type(value).__name__} {name}" if isinstance(name, str)
             else short(value))
    raise ParameterRefused(
        f"{label}'s {key!r} is {shown}, but a safe file names only "
        f"numpy's {', '.join(UFUNCS)} (np.log1p...), so that loading runs no "
        "code from the file. Use one of those, or transformer=StandardScaler() "
        "(or another scaler) in place of func and inverse_func; otherwise save "
        "the model with joblib.dump, if pickle is acceptable where it will be "
        "loaded")


def class_of(name):
    """The class ``name`` stands for, imported from :data:`SAFE_CLASSES`'
    fixed module (None where this installation lacks it)."""
    module, attribute = SAFE_CLASSES[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


def name_of(obj):
    """The :data:`SAFE_CLASSES` name of ``obj``'s exact class, or None."""
    for name in SAFE_CLASSES:
        cls = class_of(name)
        if cls is not None and type(obj) is cls:
            return name
    return None


