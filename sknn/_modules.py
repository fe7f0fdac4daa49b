"""Plain torch modules and the name -> factory tables that configure them.

Modules take ints, tuples and strings only. Every string resolves through one of
the module-level dictionaries below, keyed by the names in ``sknn._options``
that the estimators' parameter constraints accept. Layers are named (``dense0``,
``conv0``, ``batchnorm0``...) so that skorch patterns such as
``Freezer("features.*")`` and the L2 parameter groups can select them.
"""

import math
from collections import OrderedDict
from fnmatch import fnmatch
from numbers import Integral

import torch
from torch import nn

#: activation name (``sknn._options.ACTIVATIONS``) -> torch module class
ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _sklearn_glorot(weight, bias, activation):
    """scikit-learn's MLP initialisation: uniform(+-sqrt(factor / (fan_in + fan_out)))
    for weights and biases alike, factor 2 for 'logistic' and 6 otherwise."""
    fan_out, fan_in = weight.shape[0], math.prod(weight.shape[1:])
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    factor = 2.0 if activation == "logistic" else 6.0
    bound = math.sqrt(factor / (fan_in + fan_out * receptive))
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


def _keras_truncated_normal(weight, bias, activation):
    # tf.keras.initializers.TruncatedNormal(stddev=0.05), cut at two std devs
    nn.init.trunc_normal_(weight, mean=0.0, std=0.05, a=-0.1, b=0.1)
    if bias is not None:
        nn.init.zeros_(bias)


def _with_zero_bias(init, **kwargs):
    def _init(weight, bias, activation):
        init(weight, **kwargs)
        if bias is not None:
            nn.init.zeros_(bias)

    return _init


def _torch_default(weight, bias, activation):
    # torch's own reset_parameters(): kaiming_uniform(a=sqrt(5)) and fan-in bias
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = math.prod(weight.shape[1:])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


#: weight_init name -> function(weight, bias, activation) that fills both in place.
#: 'auto' is scikit-learn's scheme, so that the same parameters train alike.
WEIGHT_INITS = {
    "auto": _sklearn_glorot,
    "glorot_uniform": _with_zero_bias(nn.init.xavier_uniform_),
    "glorot_normal": _with_zero_bias(nn.init.xavier_normal_),
    "he_uniform": _with_zero_bias(nn.init.kaiming_uniform_, nonlinearity="relu"),
    "he_normal": _with_zero_bias(nn.init.kaiming_normal_, nonlinearity="relu"),
    "truncated_normal": _keras_truncated_normal,
    "torch": _torch_default,
}


#: the parameters scikit-learn's L2 term (``alpha``) applies to, as skorch
#: ``optimizer__param_groups`` patterns: the weights of the layers named
#: ``conv*`` and ``dense*`` (never biases or batch-norm parameters)
L2_PATTERNS = ("*conv*.weight", "*dense*.weight")


def l2_weights(module):
    """The parameters of ``module`` that :data:`L2_PATTERNS` select."""
    return [p for name, p in module.named_parameters()
            if any(fnmatch(name, pattern) for pattern in L2_PATTERNS)]


def init_weights(module, weight_init, activation):
    """Initialise every Linear and Conv layer of ``module`` by name."""
    init = WEIGHT_INITS[weight_init]
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                init(layer.weight, layer.bias, activation)
    return module


def dense_stack(n_in, sizes, activation, dropout, batch_norm):
    """Hidden Linear layers named ``dense0``, ``dense1``..., each followed by
    optional batch norm, the activation and optional dropout. Returns the
    ``(name, layer)`` pairs and the width of the last layer."""
    layers = []
    for i, size in enumerate(sizes):
        layers.append((f"dense{i}", nn.Linear(n_in, size)))
        if batch_norm:
            layers.append((f"batchnorm{i}", nn.BatchNorm1d(size)))
        layers.append((f"activation{i}", ACTIVATIONS[activation]()))
        if dropout:
            layers.append((f"dropout{i}", nn.Dropout(dropout)))
        n_in = size
    return layers, n_in


class MLPModule(nn.Sequential):
    """A multi-layer perceptron that returns logits.

    Parameters
    ----------
    n_features : int
        Input width.
    hidden_layer_sizes : tuple of int
        Width of each hidden layer.
    n_outputs : int
        Number of output logits.
    activation : {'identity', 'logistic', 'tanh', 'relu'}
        Hidden-layer activation.
    dropout : float
        Dropout probability after each hidden activation (0 disables it).
    batch_norm : bool
        Batch normalisation after each hidden Linear layer.
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        n_outputs,
        activation="relu",
        dropout=0.0,
        batch_norm=False,
    ):
        layers, width = dense_stack(
            n_features, hidden_layer_sizes, activation, dropout, batch_norm
        )
        layers.append(("dense_out", nn.Linear(width, n_outputs)))
        super().__init__(OrderedDict(layers))

    def linear_layers(self):
        """The Linear layers in order, input to output."""
        return [m for m in self if isinstance(m, nn.Linear)]


# ------------------------------------------------------------------ images
def conv_blocks(conv_filters):
    """``conv_filters`` as a tuple of blocks, each a tuple of filter counts.

    An int entry is a block of one convolution (``(32, 64, 64)``); a tuple entry
    is a block of several convolutions that share one pooling layer
    (``((32, 32), (64, 64))``, VGG style).
    """
    blocks = []
    for entry in conv_filters:
        block = tuple(entry) if hasattr(entry, "__iter__") else (entry,)
        if not block or not all(
                isinstance(f, Integral) and not isinstance(f, bool) and f >= 1
                for f in block):
            raise ValueError(
                "conv_filters must hold positive ints (one convolution per block) "
                "or non-empty tuples of positive ints (several convolutions per "
                f"block), got {tuple(conv_filters)!r}."
            )
        blocks.append(tuple(int(f) for f in block))
    return tuple(blocks)


def pair(value):
    """An int or a pair of ints as a (height, width) pair of ints."""
    if hasattr(value, "__iter__"):
        height, width = value
        return int(height), int(width)
    return int(value), int(value)


def pooled_after(n_blocks, pool_last):
    """Which blocks a pooling layer follows: all but the last, or all."""
    return [i < n_blocks - 1 or pool_last for i in range(n_blocks)]


def conv_output_hw(height, width, blocks, kernel_size, pool_size, padding,
                   pool_last):
    """(height, width) of the feature map after the convolution stack.

    'same' keeps the size through each convolution and pools with Keras'
    'same' rule, ``ceil(size / pool)``, so it never reaches zero; 'valid'
    shrinks by ``kernel - 1`` per convolution and pools with ``floor``. A
    size below 1 comes back as it is (<= 0) for the caller to report.
    """
    kh, kw = pair(kernel_size)
    ph, pw = pair(pool_size)
    for block, pooled in zip(blocks, pooled_after(len(blocks), pool_last)):
        for _ in block:
            if padding == "valid":
                height, width = height - kh + 1, width - kw + 1
            if height < 1 or width < 1:
                return height, width
        if pooled:
            if padding == "valid":
                height, width = height // ph, width // pw
            else:
                height, width = -(-height // ph), -(-width // pw)
    return height, width


#: 'auto' takes 'valid' only when the last feature map keeps at least this many
#: rows and columns. At 1x1 the last convolution covers its whole input (a dense
#: layer that has dropped the borders) and accuracy fell: on digits, 3 seeds,
#: 'valid' vs 'same' 0.936 vs 0.969 (8x8, conv_filters=(16, 32)) and 0.953 vs
#: 0.971 (18x18, the default stack), while at 2x2 (22x22) 'valid' did as well.
AUTO_VALID_MIN_SIZE = 2


def resolve_padding(height, width, blocks, kernel_size, pool_size, padding,
                    pool_last):
    """The padding a stack uses on ``height x width`` images: 'same' or 'valid'.

    'same' and 'valid' come back as they are. 'auto' is 'valid' when the
    whole stack fits the images without padding with room to spare: the
    feature map that 'valid' leaves after the last block (``conv_output_hw``)
    is at least ``AUTO_VALID_MIN_SIZE`` (2) along both axes, so every
    convolution and pooling window fits inside its input and the last
    convolution still slides. Otherwise 'auto' is 'same'.
    """
    if padding != "auto":
        return padding
    out_h, out_w = conv_output_hw(height, width, blocks, kernel_size, pool_size,
                                  "valid", pool_last)
    fits = min(out_h, out_w) >= AUTO_VALID_MIN_SIZE
    return "valid" if fits else "same"


def smallest_valid_size(blocks, kernel_size, pool_size, padding, pool_last):
    """The smallest (height, width) that the convolution stack maps to >= 1x1."""
    sizes = []
    for axis in (0, 1):
        size = 1
        while True:
            hw = conv_output_hw(size, size, blocks, kernel_size, pool_size,
                                padding, pool_last)
            if hw[axis] >= 1:
                break
            size += 1
        sizes.append(size)
    return tuple(sizes)


class ConvModule(nn.Module):
    """A convolutional classifier on NCHW images that returns logits.

    Each block is its convolutions (each followed by optional batch norm and
    the activation), then max pooling (after every block but the last, or
    after every block with ``pool_last``), then optional dropout. The feature
    map is flattened into the hidden dense layers and the output layer.

    Parameters
    ----------
    input_shape : tuple of int
        (height, width, channels) of one image.
    blocks : tuple of tuple of int
        Filters of each convolution, grouped by block (see :func:`conv_blocks`).
    dense_layer_sizes : tuple of int
        Width of each hidden dense layer after the convolutions.
    n_outputs : int
        Number of output logits.
    kernel_size, pool_size : int or (int, int)
        Convolution kernel and pooling window.
    padding : {'auto', 'same', 'valid'}
        'same' zero-pads convolutions and rounds pooling up (any input size is
        valid); 'valid' neither pads nor rounds up; 'auto' is 'valid' where the
        whole stack fits and 'same' otherwise (see :func:`resolve_padding`).
        The attribute ``padding`` holds the one used, 'same' or 'valid'.
    pool_last : bool
        Also pool after the last block.
    activation : {'identity', 'logistic', 'tanh', 'relu'}
    dropout : float
        Dropout probability after each block and each hidden dense layer.
    batch_norm : bool
        Batch normalisation after each convolution and hidden dense layer,
        before the activation.
    """

    def __init__(self, input_shape, blocks, dense_layer_sizes, n_outputs,
                 kernel_size=3, pool_size=2, padding="auto", pool_last=False,
                 activation="relu", dropout=0.0, batch_norm=False):
        super().__init__()
        height, width, channels = input_shape
        padding = resolve_padding(height, width, blocks, kernel_size, pool_size,
                                  padding, pool_last)
        #: 'same' or 'valid': the padding this stack uses ('auto' resolved)
        self.padding = padding
        out_h, out_w = conv_output_hw(height, width, blocks, kernel_size,
                                      pool_size, padding, pool_last)
        if out_h < 1 or out_w < 1:
            min_h, min_w = smallest_valid_size(blocks, kernel_size, pool_size,
                                               padding, pool_last)
            raise ValueError(
                f"Images of {height}x{width} (input_shape={tuple(input_shape)}) "
                f"shrink to nothing through the convolution stack with "
                f"padding={padding!r}, kernel_size={kernel_size!r} and "
                f"pool_size={pool_size!r}: the smallest valid input is "
                f"{min_h}x{min_w}. Use padding='auto' (the default: 'valid' where "
                "the stack fits, 'same' otherwise) or 'same', fewer conv_filters, a "
                "smaller kernel_size or pool_size, or larger images."
            )
        conv_padding = "same" if padding == "same" else 0
        layers = []
        n_in = channels
        kh, kw = pair(kernel_size)
        #: multiply-accumulates of one image's forward pass
        self.macs_per_image = 0
        i = 0  # convolutions are named conv0, conv1... across blocks
        for b, (block, pooled) in enumerate(
                zip(blocks, pooled_after(len(blocks), pool_last))):
            for n_filters in block:
                if padding == "valid":
                    height, width = height - kh + 1, width - kw + 1
                self.macs_per_image += height * width * kh * kw * n_in * n_filters
                layers.append((f"conv{i}", nn.Conv2d(n_in, n_filters, (kh, kw),
                                                     padding=conv_padding)))
                if batch_norm:
                    layers.append((f"batchnorm{i}", nn.BatchNorm2d(n_filters)))
                layers.append((f"activation{i}", ACTIVATIONS[activation]()))
                n_in = n_filters
                i += 1
            if pooled:
                layers.append((f"pool{b}", nn.MaxPool2d(
                    pair(pool_size), ceil_mode=padding == "same")))
                height, width = conv_output_hw(height, width, ((),), 1, pool_size,
                                               padding, True)
            if dropout:
                layers.append((f"dropout_block{b}", nn.Dropout(dropout)))
        self.features = nn.Sequential(OrderedDict(layers))
        dense, width_out = dense_stack(n_in * out_h * out_w, dense_layer_sizes,
                                       activation, dropout, batch_norm)
        self.classifier = nn.Sequential(OrderedDict(
            [("flatten", nn.Flatten()), *dense,
             ("dense_out", nn.Linear(width_out, n_outputs))]))
        self.macs_per_image += sum(m.weight.numel() for m in self.classifier
                                   if isinstance(m, nn.Linear))

    def forward(self, X):
        return self.classifier(self.features(X))

    def weight_layers(self):
        """The Conv2d and Linear layers in order, input to output."""
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
