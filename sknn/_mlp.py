"""MLPClassifierTorch: scikit-learn's MLPClassifier, trained by PyTorch via skorch."""

from numbers import Integral

import numpy as np

from sknn._base import BaseTorchClassifier
from sknn._compat import Interval
from sknn._docstrings import fill_doc


class MLPLayersMixin:
    """The fully connected network of the MLP estimators: its module from
    ``hidden_layer_sizes``, ``activation``, ``dropout``, ``batch_norm`` and
    ``weight_init``, and scikit-learn's ``coefs_``, ``intercepts_`` and
    ``n_layers_`` read from it."""

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(int(s) <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return tuple(int(s) for s in sizes)

    def _build_module(self, n_features, n_outputs):
        from sknn._modules import MLPModule, init_weights

        module = MLPModule(
            n_features, self._hidden_sizes(), n_outputs, activation=self.activation,
            dropout=self.dropout, batch_norm=self.batch_norm)
        return init_weights(module, self.weight_init, self.activation)

    def _n_parameters(self, n_features, n_outputs):
        # counted, not built: a fit checks the network against the memory
        # before allocating it, and building it on 'meta' costs ~1 ms a fit
        hidden = self._hidden_sizes()
        sizes = [n_features, *hidden, n_outputs]
        n = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))
        return n + (2 * sum(hidden) if self.batch_norm else 0)

    def _set_layer_attributes(self):
        layers = self.net_.module_.linear_layers()
        self.n_layers_ = len(layers) + 1
        # copies in the dtype of the training input, as scikit-learn's
        dtype = getattr(self, "_input_dtype", np.float32)
        self.coefs_ = [layer.weight.detach().cpu().numpy().T.astype(dtype)
                       for layer in layers]
        self.intercepts_ = [layer.bias.detach().cpu().numpy().astype(dtype)
                            for layer in layers]


@fill_doc
class MLPClassifierTorch(MLPLayersMixin, BaseTorchClassifier):
    """Multi-layer perceptron classifier trained with PyTorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`: the
    same parameters with the same names, defaults and meaning, the same fitted
    attributes, and the same log-loss, so a Pipeline or a grid search written
    for scikit-learn's MLP runs unchanged. Training runs on PyTorch through a
    skorch ``NeuralNetClassifier`` (``net_``), on the GPU when one is present.
    The extras on the right of ``*`` bring what Keras tutorials use: dropout,
    batch normalization, named weight initializers, class weights and
    skorch callbacks.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith hidden
        layer.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function for the hidden layers.

{training_parameters}
{torch_parameters}
    Attributes
    ----------
{fitted_attributes}
    n_layers_ : int
        Number of layers, input and output included.

    coefs_ : list of ndarray of shape (n_fan_in, n_fan_out)
        Copies of the weight matrices; the ith is the weight matrix of layer i.

    intercepts_ : list of ndarray of shape (n_fan_out,)
        Copies of the bias vectors; the ith is the bias of layer i + 1.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The NumPy implementation this
        estimator mirrors.
    CNNClassifier : The same contract for images.

    Notes
    -----
    Targets may be 1-D labels of any type, or the 2-D one-hot matrix that
    ``LabelBinarizer.fit_transform`` returns; predictions come back in the
    same format. A 2-D indicator matrix with several 1s in a row is a
    multilabel target and is trained with one sigmoid per column.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sknn import MLPClassifierTorch
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     MLPClassifierTorch(max_iter=30, random_state=0, device="cpu"),
    ... ).fit(X_train, y_train)
    >>> clf.predict(X_test[:5])
    array([2, 8, 2, 6, 6])
    >>> print(f"{clf.score(X_test, y_test):.2f}")
    0.97
    """

    _parameter_constraints: dict = {
        **BaseTorchClassifier._parameter_constraints,
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        batch_norm=False,
        weight_init="auto",
        class_weight=None,
        device="auto",
        precision="float32",
        callbacks=None,
        progress_bar=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.weight_init = weight_init
        self.class_weight = class_weight
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.progress_bar = progress_bar


__all__ = ["MLPClassifierTorch", "MLPLayersMixin"]
