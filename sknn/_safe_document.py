"""A model and ``sknn.json``, both ways: what the ``.sknn`` format saves of
each class, and how it builds a model back from a file that may be hostile.

:class:`Writer` turns a fitted model into a JSON-ready document, collecting
every numeric array (the network's ``state_dict`` among them) for the
safetensors member; :class:`Reader` builds the model back from the two,
constructing only classes of :data:`sknn._safe_classes.SAFE_CLASSES` with
parameters the table allows, in the nesting the writer produces (see
:mod:`sknn._safe_classes`), and rebuilding each network from its weights.

JSON values are tagged where JSON has no type of its own: ``{"__tuple__":
[...]}``, ``{"__float__": "nan"}``, ``{"__scalar__": 3, "dtype": "int64"}``,
``{"__array__": key}`` (an array in the safetensors member),
``{"__dtype__": "<f8"}`` (a numpy dtype),
``{"__strings__": [...], "dtype": "<U3", "shape": [...]}`` (an array of
strings), ``{"__dict__": [[key, value], ...]}`` (a dict whose keys are not
plain strings) and ``{"__object__": name, "params": {...}, "attributes":
{...}}`` (an object of a class in ``SAFE_CLASSES``). A Pipeline's node has
``"steps"``; a TransformedTargetRegressor's has ``"regressor"`` and
``"transformer"`` (the objects it was given, as class and parameters only:
fit clones them) and ``"regressor_"`` and ``"transformer_"`` (the fitted
ones). Functions are saved by name, from a fixed table of numpy ufuncs.
"""

import math
import re

import numpy as np

from sknn import _safe_checks as checks
from sknn._base import DERIVED_ATTRIBUTES
from sknn._pipeline import final_estimator, is_passthrough
from sknn._safe_checks import SafeFormatError
from sknn._safe_checks import expect as _expect
from sknn._safe_checks import is_tagged as _is_tagged
from sknn._safe_checks import short as _short_repr
from sknn._safe_classes import (
    ESTIMATORS,
    OBJECT,
    PARAMETERS,
    PIPELINE,
    REGRESSORS,
    SAFE_CLASSES,
    STEPS,
    TARGET_REGRESSOR,
    TRANSFORMERS,
    ParameterRefused,
    check_parameters,
    class_of,
    name_of,
)

#: fitted attributes that are not saved: the net is the weights, and
#: ``_rebuild`` derives the rest from them
_NOT_SAVED = {"net_", "device_", *DERIVED_ATTRIBUTES}
_SAFETENSORS_KINDS = "biuf"
_ATTRIBUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$|^_[A-Za-z][A-Za-z0-9_]*$")


def _named(node):
    """The class a node of the file names, or None."""
    return node.get("__object__") if isinstance(node, dict) else None


def _short_names(names):
    return ", ".join(sorted(name.rsplit(".", 1)[1] for name in names))


class Writer:
    """Model -> JSON-ready document; numeric arrays collected in ``arrays``."""

    def __init__(self):
        self.arrays = {}

    def model(self, model):
        from sklearn.pipeline import Pipeline
        from sklearn.utils.validation import check_is_fitted

        if isinstance(model, Pipeline):
            last = final_estimator(model)
            if not is_passthrough(last):
                check_is_fitted(last)
            return self.pipeline(model)
        if hasattr(model, "best_estimator_"):
            raise TypeError(
                f"sknn.save saves a fitted estimator or Pipeline, not a "
                f"{type(model).__name__}: save its best_estimator_.")
        check_is_fitted(model)
        if name_of(model) == TARGET_REGRESSOR:
            return self.target_regressor(model, "model")
        return self.object(model, "model")

    def pipeline(self, pipeline, path="model", fitted=True, in_target=False):
        """A Pipeline; its last step may be a TransformedTargetRegressor,
        except in one (``in_target``). ``fitted=False``: a parameter's
        Pipeline, its steps saved as classes and parameters."""
        params = pipeline.get_params(deep=False)
        entries = params.pop("steps")
        steps = []
        for i, (name, step) in enumerate(entries):
            where = f"{path}/steps/{i}"
            if is_passthrough(step):
                steps.append([name, step])
            elif (i == len(entries) - 1 and not in_target
                  and name_of(step) == TARGET_REGRESSOR):
                steps.append([name, self.target_regressor(step, where)])
            else:
                steps.append([name, self.object(step, where, fitted)])
        params = self.check(PIPELINE, params, path)
        return {"__object__": PIPELINE,
                "params": self.encode(params, f"{path}/params"), "steps": steps}

    def target_regressor(self, model, path):
        """A TransformedTargetRegressor: its plain parameters, the regressor
        and transformer it was given (as classes and parameters: fit clones
        them), the fitted ones and its other fitted attributes."""
        params = model.get_params(deep=False)
        given = {key: params.pop(key) for key in ("regressor", "transformer")}
        fitted = {key: value for key, value in vars(model).items()
                  if key not in params and key not in given}
        # its own functions first: a lambda is named as the user wrote it,
        # not as the FunctionTransformer that fit wrapped it in
        params = self.check(TARGET_REGRESSOR, params, path)
        regressor_ = self.regressor(fitted.pop("regressor_"), f"{path}/regressor_")
        transformer_ = self.transformer(fitted.pop("transformer_"),
                                        f"{path}/transformer_")
        return {
            "__object__": TARGET_REGRESSOR,
            "params": self.encode(params, f"{path}/params"),
            "regressor": self.regressor(given["regressor"], f"{path}/regressor",
                                        fitted=False),
            "transformer": None if given["transformer"] is None else
            self.transformer(given["transformer"], f"{path}/transformer",
                             fitted=False),
            "regressor_": regressor_, "transformer_": transformer_,
            "attributes": self.encode(fitted, f"{path}/attributes")}

    def regressor(self, regressor, path, fitted=True):
        from sklearn.pipeline import Pipeline

        last = final_estimator(regressor)
        if name_of(last) not in REGRESSORS:
            ending = f" ending in a {type(last).__name__}" if last is not regressor \
                else ""
            raise TypeError(
                f"sknn.save saves a TransformedTargetRegressor whose regressor is "
                f"an MLPRegressorTorch or a Pipeline ending in one; {path} is a "
                f"{type(regressor).__name__}{ending}. Use MLPRegressorTorch, or "
                "save this model with joblib.dump, if pickle is acceptable where "
                "it will be loaded.")
        if isinstance(regressor, Pipeline):
            return self.pipeline(regressor, path, fitted, in_target=True)
        return self.object(regressor, path, fitted)

    def transformer(self, transformer, path, fitted=True):
        if name_of(transformer) not in TRANSFORMERS:
            raise TypeError(
                f"sknn.save saves a TransformedTargetRegressor whose transformer "
                f"is None or one of {_short_names(TRANSFORMERS)}; {path} is a "
                f"{type(transformer).__name__}. Use one of those, or save this "
                "model with joblib.dump, if pickle is acceptable where it will "
                "be loaded.")
        return self.object(transformer, path, fitted)

    def object(self, obj, path, fitted=True):
        """One object of a class in SAFE_CLASSES, not a composite.
        ``fitted=False``: a parameter's estimator (fit clones it), saved as
        its class and parameters only."""
        name = name_of(obj)
        if name is None:
            raise TypeError(
                f"sknn.save cannot save a {type(obj).__module__}."
                f"{type(obj).__qualname__} (at {path}): the safe format holds only "
                f"these classes, whose state it knows: "
                f"{_short_names(SAFE_CLASSES)}. Save this model with "
                "joblib.dump instead, if pickle is acceptable where it will be "
                "loaded.")
        if name == PIPELINE:
            raise TypeError(
                f"sknn.save saves one Pipeline, not a Pipeline nested in another "
                f"(at {path}): flatten the steps into one Pipeline (only a "
                "TransformedTargetRegressor's regressor may be a Pipeline).")
        if name == TARGET_REGRESSOR:
            raise TypeError(
                f"sknn.save saves a TransformedTargetRegressor as the whole model "
                f"or as a Pipeline's last step, not at {path}.")
        params = self.check(name, obj.get_params(deep=False), path)
        node = {"__object__": name}
        if not fitted:
            node["params"] = self.encode(params, f"{path}/params")
            return node
        if name in ESTIMATORS:
            state = obj.net_.module_.state_dict()
            for key, tensor in state.items():
                self.arrays[f"{path}/module/{key}"] = (
                    tensor.detach().cpu().contiguous().numpy())
            node["module"] = f"{path}/module/"
            # skorch's per-epoch records, from which partial_fit and warm-started
            # fits continue loss_curve_, t_ and history_; per-batch sizes dropped
            node["net_history"] = self.encode(
                [{k: v for k, v in row.items() if k != "batches"}
                 for row in obj.net_.history], f"{path}/net_history")
        fitted = {key: value for key, value in vars(obj).items()
                  if key not in params and key not in _NOT_SAVED}
        node["params"] = self.encode(params, f"{path}/params")
        node["attributes"] = self.encode(fitted, f"{path}/attributes")
        return node

    @staticmethod
    def check(name, params, path):
        """``params`` as the file holds them (functions named), or a
        ValueError for one the format refuses."""
        try:
            return check_parameters(name, params, "save")
        except ParameterRefused as exc:
            raise ValueError(f"sknn.save cannot save {path}: {exc}.") from None

    def encode(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, np.integer):
            return value
        if isinstance(value, float) and not isinstance(value, np.floating):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, np.dtype) and checks.DTYPE_NAME_RE.match(value.str):
            return {"__dtype__": value.str}
        if isinstance(value, np.generic) and value.dtype.kind in _SAFETENSORS_KINDS:
            return {"__scalar__": self.encode(value.item(), path),
                    "dtype": value.dtype.str}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}")
                                  for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.encode(v, f"{path}/{k}") for k, v in value.items()}
            return {"__dict__": [[self.encode(k, path), self.encode(v, f"{path}/{k}")]
                                 for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in _SAFETENSORS_KINDS:
                self.arrays[path] = np.ascontiguousarray(value)
                # and the memory order: a product with a Fortran-ordered array
                # (PCA's components_) rounds differently in BLAS otherwise
                fortran = value.ndim > 1 and not value.flags.c_contiguous \
                    and value.flags.f_contiguous
                return {"__array__": path, "order": "F"} if fortran else {
                    "__array__": path}
            if value.dtype.kind == "U" or (value.dtype.kind == "O" and all(
                    isinstance(v, str) for v in value.ravel())):
                return {"__strings__": value.ravel().tolist(),
                        "dtype": "object" if value.dtype.kind == "O"
                        else value.dtype.str,
                        "shape": list(value.shape)}
        if name_of(value) is not None:
            return self.object(value, path)
        raise TypeError(
            f"sknn.save cannot save {path} = {_short_repr(value)} of type "
            f"{type(value).__name__}: the safe format holds numbers, strings, "
            "lists, tuples, dicts and numeric or string arrays. Set it to one of "
            "those (e.g. random_state to an int) before saving.")


class Reader:
    """JSON document + arrays -> model, building only SAFE_CLASSES objects."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()

    def model(self, node):
        if _named(node) == PIPELINE:
            return self.pipeline(node)
        if _named(node) == TARGET_REGRESSOR:
            return self.target_regressor(node)
        return self.object(node)

    def pipeline(self, node, fitted=True, in_target=False):
        """As :meth:`Writer.pipeline` wrote it: composites only where the
        writer puts them, so the nesting stays bounded."""
        from sklearn.pipeline import Pipeline

        entries = _expect(node.get("steps"), list, "Pipeline steps")
        steps = []
        for i, entry in enumerate(entries):
            name, step = _expect(entry, list, "a Pipeline step")
            _expect(name, str, "a Pipeline step's name")
            if is_passthrough(step):
                pass
            elif (i == len(entries) - 1 and not in_target
                  and _named(step) == TARGET_REGRESSOR):
                step = self.target_regressor(step)
            else:
                step = self.object(step, fitted)
            steps.append((name, step))
        params = self.params(PIPELINE, node)
        return checks.validated(Pipeline(steps, **params), "Pipeline")

    def target_regressor(self, node):
        params = self.params(TARGET_REGRESSOR, node)
        transformer = node.get("transformer")
        if transformer is not None:
            transformer = self.transformer(transformer, fitted=False)
        model = checks.validated(class_of(TARGET_REGRESSOR)(
            regressor=self.regressor(node.get("regressor"), fitted=False),
            transformer=transformer, **params), TARGET_REGRESSOR)
        model.regressor_ = self.regressor(node.get("regressor_"))
        model.transformer_ = self.transformer(node.get("transformer_"))
        attributes = _expect(self.decode(node.get("attributes"), objects=False),
                             dict, f"the fitted attributes of {TARGET_REGRESSOR}")
        self.check_attributes(TARGET_REGRESSOR, attributes,
                              ("regressor_", "transformer_"))
        dim = attributes.get("_training_dim")
        if type(dim) is not int or dim not in (1, 2):
            raise SafeFormatError(f"its target has {_short_repr(dim)} dimensions")
        for key, value in attributes.items():
            setattr(model, key, value)
        # fit clones transformer into transformer_, or wraps func and
        # inverse_func in a FunctionTransformer
        wrapped = (type(transformer) if transformer is not None else
                   class_of("sklearn.preprocessing.FunctionTransformer"))
        if type(model.transformer_) is not wrapped or transformer is None and (
                model.transformer_.func is not model.func
                or model.transformer_.inverse_func is not model.inverse_func):
            raise SafeFormatError("its transformer_ is not what its transformer "
                                  "or func and inverse_func make")
        return model

    def regressor(self, node, fitted=True):
        if _named(node) == PIPELINE:
            regressor = self.pipeline(node, fitted, in_target=True)
        else:
            regressor = self.object(node, fitted)
        if name_of(final_estimator(regressor)) not in REGRESSORS:
            raise SafeFormatError(
                f"a TransformedTargetRegressor's regressor is "
                f"{_short_repr(regressor)}, not an MLPRegressorTorch or a "
                "Pipeline ending in one")
        return regressor

    def transformer(self, node, fitted=True):
        if _named(node) not in TRANSFORMERS:
            raise SafeFormatError(
                f"a TransformedTargetRegressor's transformer is "
                f"{_short_repr(_named(node) or node)}, not one of "
                f"{_short_names(TRANSFORMERS)}")
        return self.object(node, fitted)

    def params(self, name, node):
        params = _expect(self.decode(node.get("params"), objects=False), dict,
                         f"the parameters of {name}")
        for key, (kind, _) in PARAMETERS[name].items():
            if kind in (STEPS, OBJECT) and key in params:
                raise SafeFormatError(f"{name}'s {key} is not among its "
                                      "parameters but in an entry of its own")
        try:
            return check_parameters(name, params, "load")
        except ParameterRefused as exc:
            raise SafeFormatError(str(exc)) from None

    @staticmethod
    def check_attributes(name, attributes, slots=()):
        """Data only: never a name that would shadow a method or property, a
        parameter, an object's own entry or state rebuilt from the weights
        (net_, device_...)."""
        cls = class_of(name)
        for key in attributes:
            if (not _ATTRIBUTE_RE.match(key) or hasattr(cls, key)
                    or key in PARAMETERS[name] or key in _NOT_SAVED
                    or key in slots):
                raise SafeFormatError(f"{name} cannot have an attribute {key!r}")

    def object(self, node, fitted=True):
        """One object of a class in SAFE_CLASSES, not a composite.
        ``fitted=False``: a parameter's estimator, its class and parameters."""
        name = _named(node)
        if not isinstance(name, str):
            raise SafeFormatError(f"expected a saved object, got {_short_repr(node)}")
        if name in (PIPELINE, TARGET_REGRESSOR):
            raise SafeFormatError(
                f"it nests a {name} where the format holds none (a Pipeline's "
                "last step may be a TransformedTargetRegressor, whose regressor "
                "may be a Pipeline, and nothing else nests)")
        if name not in SAFE_CLASSES:
            raise SafeFormatError(
                f"it names the class {name!r}, which the safe format does not "
                "load (it loads " + ", ".join(sorted(SAFE_CLASSES)) + ")")
        cls = class_of(name)
        if cls is None:
            raise SafeFormatError(
                f"it needs {name}, which this installation of sknn lacks; "
                "upgrade sknn")
        params = self.params(name, node)
        obj = checks.validated(cls(**params), name)
        if not fitted:
            if set(node) != {"__object__", "params"}:
                raise SafeFormatError(f"the {name} given as a parameter holds "
                                      "more than its class and parameters")
            return obj
        attributes = _expect(self.decode(node.get("attributes")), dict,
                             f"the fitted attributes of {name}")
        self.check_attributes(name, attributes)
        if name in ESTIMATORS:
            self.rebuild(obj, node, attributes)
        else:
            for key, value in attributes.items():
                setattr(obj, key, value)
        return obj

    def rebuild(self, estimator, node, attributes):
        import torch
        from sklearn.base import is_regressor
        from skorch.history import History

        targets = (("n_outputs_", "out_activation_") if is_regressor(estimator)
                   else ("target_encoder_", "classes_"))
        missing = {*targets, "n_features_in_"} - set(attributes)
        if missing:
            raise SafeFormatError(f"the estimator lacks {sorted(missing)}")
        # all fitted metadata first (input shape, target encoding, input dtype
        # ...): _rebuild builds the net from it and derives the rest
        for key, value in attributes.items():
            setattr(estimator, key, value)
        prefix = _expect(node.get("module"), str, "the weights' key prefix")
        state = {}
        for key, array in self.arrays.items():
            if key.startswith(prefix):
                state[key[len(prefix):]] = torch.from_numpy(array)
                self.used.add(key)
        if not state:
            raise SafeFormatError("the estimator has no weights")
        if not is_regressor(estimator) and not isinstance(
                estimator.target_encoder_, class_of("sknn.TargetEncoder")):
            raise SafeFormatError("its target_encoder_ is not a TargetEncoder")
        # before anything is allocated: the declared network, built on the
        # meta device, against the weights
        checks.check_architecture(estimator, state)
        estimator._rebuild({key: t.clone() for key, t in state.items()})
        # what _rebuild derived from the weights is not the file's to override
        for key, value in attributes.items():
            if getattr(estimator, key) is not value and not checks.same(
                    getattr(estimator, key), value):
                raise SafeFormatError(
                    f"its attribute {key!r} contradicts the network rebuilt "
                    "from the weights")
        rows = _expect(self.decode(node.get("net_history", [])), list,
                       "the training history")
        estimator.net_.history = History(
            [{**_expect(row, dict, "an epoch record"), "batches": []} for row in rows])

    def decode(self, value, objects=True):
        """JSON -> value; ``objects=False`` (parameters): plain data only."""
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(v, objects) for v in value]
        if not isinstance(value, dict):
            raise SafeFormatError(f"unexpected JSON value {_short_repr(value)}")
        if _is_tagged(value, "__tuple__"):
            return tuple(self.decode(v, objects) for v in _expect(
                value["__tuple__"], list, "a tuple"))
        if _is_tagged(value, "__float__"):
            text = value["__float__"]
            if text not in ("nan", "inf", "-inf"):
                raise SafeFormatError(f"bad float {_short_repr(text)}")
            return float(text)
        if _is_tagged(value, "__scalar__", "dtype"):
            dtype = checks.numpy_dtype(value["dtype"])
            if dtype.kind not in _SAFETENSORS_KINDS:
                raise SafeFormatError(f"bad scalar dtype {dtype}")
            scalar = self.decode(value["__scalar__"])
            if type(scalar) not in (bool, int, float):
                raise SafeFormatError(f"bad scalar {_short_repr(scalar)}")
            return dtype.type(scalar)
        if _is_tagged(value, "__dtype__"):
            return checks.numpy_dtype(value["__dtype__"])
        if _is_tagged(value, "__array__") or _is_tagged(value, "__array__", "order"):
            key, order = value["__array__"], value.get("order", "C")
            if not isinstance(key, str) or key not in self.arrays or order not in (
                    "C", "F"):
                raise SafeFormatError(f"bad array reference {_short_repr(value)}")
            self.used.add(key)
            return self.arrays[key].copy(order=order)
        if _is_tagged(value, "__strings__", "dtype", "shape"):
            return checks.strings(value)
        if _is_tagged(value, "__dict__"):
            items = _expect(value["__dict__"], list, "dict items")
            if not all(isinstance(i, list) and len(i) == 2 for i in items):
                raise SafeFormatError("dict items should be pairs")
            return {self.decode(k, objects): self.decode(v, objects)
                    for k, v in items}
        if _is_tagged(value, "__object__", "params", "attributes"):
            if not objects:
                raise SafeFormatError(
                    f"a parameter holds an object ({_short_repr(value)}); "
                    "parameters are plain data")
            return self.object(value)
        if any(k.startswith("__") for k in value):
            raise SafeFormatError(f"unknown tag in {_short_repr(value)}")
        return {k: self.decode(v, objects) for k, v in value.items()}
