"""ONNX export of sknn estimators, and of whole Pipelines that end in one.

:func:`to_onnx` hands the model to skl2onnx, which converts scikit-learn's own
transformers, after registering converters for sknn's classifiers and for
``sknn.preprocessing.PixelScaler``, so that a Pipeline becomes one graph.

The networks are written out layer by layer with ONNX operators (Gemm, Conv,
MaxPool, the activations), from the fitted torch module: batch normalization
is folded into the preceding Linear or Conv layer and dropout, an identity at
predict time, is left out. ``torch.onnx.export`` is not used: in torch 2.13 its
TorchScript exporter is deprecated ("will be removed") and the default one
needs onnxscript besides; writing the few operators ourselves keeps the graph
readable, puts it straight into skl2onnx's graph and needs no tracing.

Every graph takes one input ``X``, 2-D float32 rows of ``n_features_in_``
values (images flattened channels-last, as the CNN reads flat rows), and has
two outputs: ``label`` (the predicted labels in the type of ``classes_``, or
0/1 int64 rows for one-hot and multilabel targets) and ``probabilities``, a
float32 ``(N, n_classes)`` tensor, as ``predict`` and ``predict_proba`` give.
A regressor's graph has one output, ``variable`` (skl2onnx's name for a
regressor's), float32 ``(N, n_outputs)``: ``predict`` as a matrix.
"""

import json

import numpy as np

from sknn._deps import require
from sknn._pipeline import (
    final_estimator,
    first_step,
    input_spec,
    unwrap_search,
    without_passthrough,
)

#: ONNX opsets of the exported graphs: opset 17 runs on onnxruntime >= 1.14
DEFAULT_OPSET = {"": 17, "ai.onnx.ml": 3}

INPUT_NAME = "X"
LABEL_NAME = "label"
PROBA_NAME = "probabilities"

#: ONNX metadata key of what a reader needs to feed the graph (JSON, see
#: :func:`input_metadata`); ``sknn.predict`` and ``sknn._onnx_runtime`` read it
METADATA_KEY = "sknn.input_spec"

#: the fitted statistics of a PixelScaler the metadata carries, so that the
#: ONNX file warns about unlike images as the Pipeline does
PIXEL_SCALER_STATE = ("n_features_in_", "image_shape_", "mean_", "value_range_",
                      "background_", "color_mode_", "max_value")


def _convertible(model):
    """The model to convert (a search unwrapped, identity steps left out) and
    the sknn estimator at its end, or a TypeError saying what is supported."""
    from sknn._base import BaseTorchEstimator

    model = unwrap_search(model)
    last = final_estimator(model)
    if not isinstance(last, BaseTorchEstimator):
        raise TypeError(
            "to_onnx exports an MLPClassifierTorch, a CNNClassifier, an "
            "MLPRegressorTorch, or a Pipeline "
            "of scikit-learn transformers that ends in one (or a fitted search "
            f"whose best_estimator_ is one); got {type(model).__name__}"
            + (f" ending in {type(last).__name__}" if last is not model else "")
            + ".")
    return without_passthrough(model), last


def _refuse_named_columns(model):
    """A NotImplementedError for a ColumnTransformer that picks DataFrame
    columns by name: the graph's one input ``X`` is a matrix of numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = [step for _, step in model.steps] if isinstance(model, Pipeline) \
        else [model]
    for step in steps:
        if isinstance(step, Pipeline):
            _refuse_named_columns(step)
        if not isinstance(step, ColumnTransformer):
            continue
        named = []
        for _, transformer, columns in getattr(step, "transformers_",
                                               step.transformers):
            if isinstance(transformer, str) and transformer == "drop":
                continue  # dropped columns never reach the graph
            columns = [columns] if isinstance(columns, str) else columns
            if isinstance(columns, (list, tuple)):
                named.extend(c for c in columns if isinstance(c, str))
        if named:
            raise NotImplementedError(
                f"to_onnx exports models that take one matrix of numbers, but "
                f"this Pipeline's ColumnTransformer picks DataFrame columns by "
                f"name ({named[:5]}{'...' if len(named) > 5 else ''}), which an "
                "ONNX graph with the single input 'X' does not have. Keep the "
                "model as a joblib file; for numeric columns only, select them "
                "by position.")


def input_metadata(model, n_features):
    """What a reader of the ONNX file needs to feed it, as JSON.

    The :func:`sknn._pipeline.input_spec` of the model (image shape and pixel
    scale, or the CSV column names), its ``classes``, the graph's input width
    ``n_features``, and for a Pipeline that starts with a
    :class:`~sknn.preprocessing.PixelScaler` its fitted statistics
    (``pixel_scaler``), so that ``sknn predict`` warns about unlike images
    for the ONNX file as for the Pipeline. :func:`to_onnx` stores it under
    :data:`METADATA_KEY`.
    """
    from sknn.preprocessing import PixelScaler

    spec = dict(input_spec(model))
    spec.pop("categories", None)  # sets; models that one-hot encode are refused
    spec["n_features"] = int(n_features)
    if spec.get("image_shape") is not None:
        spec["image_shape"] = [int(s) for s in spec["image_shape"]]
    last = final_estimator(model)
    if hasattr(last, "classes_"):  # a regressor has none
        spec["classes"] = np.asarray(last.classes_).tolist()
    first = first_step(model)
    if isinstance(first, PixelScaler):
        state = {key: getattr(first, key) for key in PIXEL_SCALER_STATE}
        state["max_value"] = float(state["max_value"])
        if state["image_shape_"] is not None:
            state["image_shape_"] = [int(s) for s in state["image_shape_"]]
        state["value_range_"] = [float(v) for v in state["value_range_"]]
        spec["pixel_scaler"] = state
    return json.dumps(spec)


def to_onnx(model, X_sample=None, *, target_opset=None):
    """Convert a fitted sknn classifier, or a Pipeline ending in one, to ONNX.

    Parameters
    ----------
    model : MLPClassifierTorch, CNNClassifier, Pipeline or fitted search
        A fitted estimator; a :class:`~sklearn.pipeline.Pipeline` of
        transformers that skl2onnx converts (``StandardScaler``,
        ``MinMaxScaler``, ``PCA``, ... and ``sknn.preprocessing.PixelScaler``)
        ending in one (``'passthrough'`` and None steps are left out); or a
        fitted ``GridSearchCV``/``RandomizedSearchCV``, whose
        ``best_estimator_`` is exported.
    X_sample : array-like, default=None
        A few rows of the input ``model.predict`` takes; only their width
        (and dtype, see Notes) is used. Images (3-D or 4-D) count as their
        flattened rows. None: float32 rows of the model's ``n_features_in_``.
    target_opset : int or dict, default=None
        ONNX opset(s), as skl2onnx takes them; default ``{'': 17,
        'ai.onnx.ml': 3}``.

    Returns
    -------
    onnx_model : onnx.ModelProto
        One graph with input ``'X'`` (float32 rows, shape ``(N,
        n_features_in_)``) and outputs ``'label'`` and ``'probabilities'``
        (float32, ``(N, n_classes)``, no ZipMap). Its metadata holds, under
        the key ``'sknn.input_spec'``, what a reader needs to feed it (JSON:
        the image size and pixel scale or the column names, the classes, the
        PixelScaler's statistics; see :func:`input_metadata`), so that
        ``sknn predict`` reads images and CSV files for it as for the model.

    Raises
    ------
    ImportError
        If onnx or skl2onnx is missing (``pip install 'sknn[deploy]'``).
    TypeError
        If the model is not one of the above.
    NotImplementedError
        If a layer of the network has no ONNX translation here, or a
        ColumnTransformer picks DataFrame columns by name (text columns
        one-hot encoded among them): the graph's one input is a matrix of
        numbers.

    Notes
    -----
    The labels keep the type of ``classes_``: int64 for integer labels,
    strings, booleans or float64. For one-hot (``LabelBinarizer``) and
    multilabel targets, ``label`` is the int64 0/1 matrix ``predict`` gives.

    A :class:`~sknn.CNNClassifier` divides ``uint8`` images by 255 itself. When
    it is the first step and ``X_sample`` is ``uint8``, the graph's input is
    ``uint8`` too and the division is in the graph; otherwise the input is
    float32 and used as it is, as ``predict`` uses float input.

    Once called, skl2onnx also converts sknn's estimators in its own
    ``convert_sklearn``.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> onx = sknn.to_onnx(pipe, X[:1])                        # doctest: +SKIP
    >>> sess = ort.InferenceSession(onx.SerializeToString())   # doctest: +SKIP
    >>> labels, proba = sess.run(None, {"X": X.astype("float32")})  # doctest: +SKIP
    """
    require("onnx", "sknn.to_onnx")
    skl2onnx = require("skl2onnx", "sknn.to_onnx")
    from skl2onnx.common.data_types import FloatTensorType, UInt8TensorType
    from sklearn.utils.validation import check_is_fitted

    from sknn._cnn import CNNClassifier

    model, estimator = _convertible(model)
    check_is_fitted(estimator)
    _refuse_named_columns(model)
    register_converters(type(estimator))

    first = first_step(model)
    expected = getattr(first, "n_features_in_", None)
    if X_sample is None:
        if expected is None:
            raise ValueError(
                "The model does not record its input width (n_features_in_): "
                "pass X_sample, a few rows of the data it predicts on.")
        X_sample = np.zeros((1, expected), dtype=np.float32)
    X_sample = np.asarray(X_sample)
    if X_sample.ndim < 2:
        raise ValueError(
            "X_sample must hold rows of input, (n_samples, n_features) or "
            f"images (n_samples, height, width[, channels]); got shape "
            f"{X_sample.shape}. Pass X[:1], not X[0].")
    n_features = int(np.prod(X_sample.shape[1:]))
    if expected is not None and expected != n_features:
        raise ValueError(
            f"X_sample has {n_features} features per row, but the model was "
            f"fitted on {expected}. Pass a few rows of the data the model "
            "predicts on.")
    raw_pixels = X_sample.dtype == np.uint8 and isinstance(first, CNNClassifier)
    input_type = UInt8TensorType if raw_pixels else FloatTensorType
    onx = skl2onnx.convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, input_type([None, n_features]))],
        target_opset=DEFAULT_OPSET if target_opset is None else target_opset,
        name=type(estimator).__name__,
    )
    entry = onx.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, input_metadata(model, n_features)
    return onx


# ------------------------------------------------------------------ registry
def register_converters(*extra_classes):
    """Register sknn's parser, shape calculator and converter with skl2onnx for
    both classifiers and the regressor (and any subclasses given), and
    PixelScaler's."""
    from skl2onnx import update_registered_converter
    from sklearn.base import RegressorMixin

    from sknn._cnn import CNNClassifier
    from sknn._mlp import MLPClassifierTorch
    from sknn._regressor import MLPRegressorTorch

    # registering again is cheap and idempotent
    for cls in {MLPClassifierTorch, CNNClassifier, MLPRegressorTorch,
                *extra_classes}:
        if issubclass(cls, RegressorMixin):  # skl2onnx's parser: 'variable'
            update_registered_converter(
                cls, f"Sknn{cls.__name__}", _regressor_shapes, _convert_regressor)
            continue
        update_registered_converter(
            cls, f"Sknn{cls.__name__}", _classifier_shapes, _convert_classifier,
            parser=_parse_classifier)
    from sknn.preprocessing import PixelScaler

    update_registered_converter(
        PixelScaler, "SknnPixelScaler", _pixel_scaler_shapes,
        _convert_pixel_scaler)


def _label_type(estimator):
    """skl2onnx tensor type of the ``label`` output, and the classes as the
    array the graph gathers labels from (None for indicator targets)."""
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        Int64TensorType,
        StringTensorType,
    )

    encoder = estimator.target_encoder_
    if encoder.kind_ in ("onehot", "multilabel"):
        return Int64TensorType, None
    classes = np.asarray(encoder.classes_)
    if classes.dtype.kind in "iu":
        return Int64TensorType, classes.astype(np.int64)
    if classes.dtype.kind == "b":
        return BooleanTensorType, classes
    if classes.dtype.kind == "f":
        return DoubleTensorType, classes.astype(np.float64)
    if classes.dtype.kind == "U" or (
            classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes)):
        return StringTensorType, classes.astype(object)
    if classes.dtype.kind == "O" and all(
            isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_))
            for c in classes):
        return Int64TensorType, classes.astype(np.int64)
    raise NotImplementedError(
        f"Labels of dtype {classes.dtype} ({classes[:3].tolist()}...) cannot be "
        "ONNX outputs; to_onnx exports integer, string, boolean and float labels. "
        "Encode the labels as one of those before fitting.")


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    # skl2onnx's default classifier parser would append a ZipMap (a list of
    # dicts); sknn's graphs give the plain (N, n_classes) tensor instead
    from skl2onnx import get_model_alias
    from skl2onnx.common.data_types import FloatTensorType

    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    label_type, _ = _label_type(model)
    operator.outputs.append(scope.declare_local_variable(LABEL_NAME, label_type()))
    operator.outputs.append(
        scope.declare_local_variable(PROBA_NAME, FloatTensorType()))
    return operator.outputs


def _classifier_shapes(operator):
    from skl2onnx.common.data_types import FloatTensorType

    estimator = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    n_classes = len(estimator.classes_)
    label_type, _ = _label_type(estimator)
    indicator = estimator.target_encoder_.kind_ in ("onehot", "multilabel")
    operator.outputs[0].type = label_type([n, n_classes] if indicator else [n])
    operator.outputs[1].type = FloatTensorType([n, n_classes])


def _regressor_shapes(operator):
    from skl2onnx.common.data_types import FloatTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, operator.raw_operator.n_outputs_])


def _pixel_scaler_shapes(operator):
    from skl2onnx.common.data_types import FloatTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType(
        [n, operator.raw_operator.n_features_in_])


# ---------------------------------------------------------------- converters
class _Emitter:
    """Adds uniquely named initializers and nodes to skl2onnx's container."""

    def __init__(self, scope, container):
        self.scope = scope
        self.container = container

    def const(self, seed, array):
        from onnx import TensorProto, numpy_helper

        name = self.scope.get_unique_variable_name(seed)
        array = np.asarray(array)
        if array.dtype == object:
            self.container.add_initializer(
                name, TensorProto.STRING, list(array.shape),
                [str(v).encode("utf-8") for v in array.ravel()])
        else:
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
            self.container.add_initializer(name, tensor.data_type,
                                           list(array.shape), tensor)
        return name

    def node(self, op_type, inputs, seed=None, output=None, **attrs):
        output = output or self.scope.get_unique_variable_name(
            seed or op_type.lower())
        self.container.add_node(
            op_type, list(inputs), [output],
            name=self.scope.get_unique_operator_name(op_type), **attrs)
        return output


def _convert_pixel_scaler(scope, operator, container):
    from onnx import TensorProto

    g = _Emitter(scope, container)
    x = g.node("Cast", [operator.inputs[0].full_name], "pixels", to=TensorProto.FLOAT)
    scale = g.const("max_value", np.float32(operator.raw_operator.max_value))
    g.node("Div", [x, scale], output=operator.outputs[0].full_name)


def _convert_classifier(scope, operator, container):
    from onnx import TensorProto

    from sknn._modules import ConvModule, MLPModule

    estimator = operator.raw_operator
    encoder = estimator.target_encoder_
    module = estimator.net_.module_
    g = _Emitter(scope, container)

    x = operator.inputs[0].full_name
    input_type = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    if input_type != TensorProto.FLOAT:
        x = g.node("Cast", [x], "input_float", to=TensorProto.FLOAT)
    if input_type == TensorProto.UINT8:
        # what the CNN does to uint8 input itself: pixels / 255
        x = g.node("Div", [x, g.const("pixel_max", np.float32(255.0))], "pixels")

    if isinstance(module, ConvModule):
        height, width, channels = estimator.input_shape_
        x = g.node("Reshape", [x, g.const("image_shape", np.array(
            [-1, height, width, channels], dtype=np.int64))], "images_nhwc")
        x = g.node("Transpose", [x], "images_nchw", perm=[0, 3, 1, 2])
        layers = [*module.features, *module.classifier]
    elif isinstance(module, MLPModule):
        layers = list(module)
    else:
        raise NotImplementedError(
            f"to_onnx has no translation of the module {type(module).__name__}; "
            "it exports sknn's MLPModule and ConvModule.")
    logits = _emit_layers(g, x, layers)

    proba_out = operator.outputs[1].full_name
    if encoder.loss_family == "ce":
        g.node("Softmax", [logits], output=proba_out, axis=1)
    elif encoder.kind_ == "multilabel":
        g.node("Sigmoid", [logits], output=proba_out)
    else:  # binary: one sigmoid output, two probability columns
        p = g.node("Sigmoid", [logits], "positive_proba")
        q = g.node("Sub", [g.const("one", np.float32(1.0)), p], "negative_proba")
        g.node("Concat", [q, p], output=proba_out, axis=1)

    label_out = operator.outputs[0].full_name
    if encoder.kind_ == "multilabel":
        above = g.node("Greater", [proba_out, g.const("half", np.float32(0.5))],
                       "above_half")
        g.node("Cast", [above], output=label_out, to=TensorProto.INT64)
        return
    # ArgMax takes the first of equal maxima, as numpy's argmax in predict
    if encoder.kind_ == "onehot":
        winner = g.node("ArgMax", [proba_out], "winner", axis=1, keepdims=1)
        columns = g.const("columns", np.arange(len(encoder.classes_), dtype=np.int64))
        hit = g.node("Equal", [winner, columns], "is_winner")
        g.node("Cast", [hit], output=label_out, to=TensorProto.INT64)
        return
    _, classes = _label_type(estimator)
    winner = g.node("ArgMax", [proba_out], "winner", axis=1, keepdims=0)
    g.node("Gather", [g.const("classes", classes), winner], output=label_out, axis=0)


def _convert_regressor(scope, operator, container):
    from onnx import TensorProto

    estimator = operator.raw_operator
    g = _Emitter(scope, container)
    x = operator.inputs[0].full_name
    input_type = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type
    if input_type != TensorProto.FLOAT:
        x = g.node("Cast", [x], "input_float", to=TensorProto.FLOAT)
    outputs = _emit_layers(g, x, list(estimator.net_.module_))
    # the output activation: the identity, or exp for loss='poisson'
    op = "Exp" if estimator.out_activation_ == "exp" else "Identity"
    g.node(op, [outputs], output=operator.outputs[0].full_name)


def _emit_layers(g, x, layers):
    """The nodes of a forward pass through ``layers`` (in eval mode) from the
    float32 tensor ``x``; returns the name of the logits."""
    from torch import nn

    from sknn._modules import ACTIVATIONS

    activation_ops = {nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh", nn.ReLU: "Relu"}
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            weight, bias = _weights(layer)
            if isinstance(following, (nn.BatchNorm1d, nn.BatchNorm2d)):
                scale, shift = _batch_norm_affine(following)
                weight = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
                bias = bias * scale + shift
                i += 1
            w = g.const("weight", weight.astype(np.float32))
            b = g.const("bias", bias.astype(np.float32))
            if isinstance(layer, nn.Linear):
                x = g.node("Gemm", [x, w, b], "dense", transB=1)
            else:
                x = g.node("Conv", [x, w, b], "conv", **_conv_attributes(layer))
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale, shift = _batch_norm_affine(layer)
            shape = (-1,) if isinstance(layer, nn.BatchNorm1d) else (-1, 1, 1)
            x = g.node("Mul", [x, g.const("bn_scale", scale.reshape(shape).astype(
                np.float32))], "bn_scaled")
            x = g.node("Add", [x, g.const("bn_shift", shift.reshape(shape).astype(
                np.float32))], "bn")
        elif type(layer) in activation_ops:
            x = g.node(activation_ops[type(layer)], [x], "activation")
        elif isinstance(layer, (nn.Identity, nn.Dropout)):
            pass  # dropout is the identity at predict time
        elif isinstance(layer, nn.MaxPool2d):
            x = g.node("MaxPool", [x], "pooled", **_pool_attributes(layer))
        elif isinstance(layer, nn.Flatten) and layer.start_dim == 1 and (
                layer.end_dim == -1):
            x = g.node("Flatten", [x], "flat", axis=1)
        else:
            raise NotImplementedError(
                f"to_onnx has no translation of the layer {layer!r}. It knows "
                "Linear, Conv2d, BatchNorm1d/2d, MaxPool2d, Flatten, Dropout and "
                f"the activations {sorted(ACTIVATIONS)}.")
        i += 1
    return x


def _weights(layer):
    """(weight, bias) of a Linear or Conv2d layer as float64 arrays."""
    weight = layer.weight.detach().cpu().double().contiguous().numpy()
    if layer.bias is None:
        bias = np.zeros(weight.shape[0])
    else:
        bias = layer.bias.detach().cpu().double().numpy()
    return weight, bias


def _batch_norm_affine(layer):
    """Batch normalization at predict time as ``x * scale + shift``."""
    if layer.running_mean is None:
        raise NotImplementedError(
            "to_onnx exports batch normalization with running statistics "
            "(track_running_stats=True) only.")
    mean = layer.running_mean.detach().cpu().double().numpy()
    var = layer.running_var.detach().cpu().double().numpy()
    scale = 1.0 / np.sqrt(var + layer.eps)
    shift = -mean * scale
    if layer.affine:
        gamma = layer.weight.detach().cpu().double().numpy()
        beta = layer.bias.detach().cpu().double().numpy()
        scale, shift = scale * gamma, shift * gamma + beta
    return scale, shift


def _conv_attributes(layer):
    if layer.padding_mode != "zeros":
        raise NotImplementedError(
            f"to_onnx exports zero-padded convolutions only, not "
            f"padding_mode={layer.padding_mode!r}.")
    kernel = list(layer.kernel_size)
    dilation = list(layer.dilation)
    if layer.padding == "same":
        # torch pads the odd pixel of an even kernel at the end
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        begin = [t // 2 for t in total]
        pads = begin + [t - b for t, b in zip(total, begin)]
    elif layer.padding == "valid":
        pads = [0, 0, 0, 0]
    else:
        pads = list(layer.padding) * 2
    return dict(kernel_shape=kernel, strides=list(layer.stride), pads=pads,
                dilations=dilation, group=layer.groups)


def _pool_attributes(layer):
    from sknn._modules import pair

    kernel = list(pair(layer.kernel_size))
    stride = list(pair(layer.stride if layer.stride is not None else kernel))
    padding = list(pair(layer.padding))
    return dict(kernel_shape=kernel, strides=stride, pads=padding * 2,
                dilations=list(pair(layer.dilation)),
                ceil_mode=int(layer.ceil_mode))
