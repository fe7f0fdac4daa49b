"""Plain torch modules and the name -> factory tables that configure them.

Modules take ints, tuples and strings only. Every string resolves through one of
the module-level dictionaries below, whose keys are also the options accepted by
the estimators' parameter constraints.
"""

import math

import torch
from torch import nn

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


def init_weights(module, weight_init, activation):
    """Initialise every Linear and Conv layer of ``module`` by name."""
    init = WEIGHT_INITS[weight_init]
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                init(layer.weight, layer.bias, activation)
    return module


def dense_stack(n_in, sizes, activation, dropout, batch_norm):
    """Hidden Linear layers, each followed by optional batch norm, the activation
    and optional dropout. Returns the layers and the width of the last one."""
    layers = []
    for size in sizes:
        layers.append(nn.Linear(n_in, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
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
        layers.append(nn.Linear(width, n_outputs))
        super().__init__(*layers)

    def linear_layers(self):
        """The Linear layers in order, input to output."""
        return [m for m in self if isinstance(m, nn.Linear)]
