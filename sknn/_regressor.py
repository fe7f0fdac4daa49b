"""MLPRegressorTorch: scikit-learn's MLPRegressor, trained by PyTorch via skorch.

The regressor shares everything but its targets with the classifiers: the
parameters, the validation of X, ``fit`` and the engine
(``sknn._base.BaseTorchEstimator``, ``sknn._training``), the network
(``sknn._mlp.MLPLayersMixin``). Its net is skorch's ``NeuralNetRegressor``
(``sknn._net.SknnRegressorNet``), trained on scikit-learn's half squared
error or half Poisson deviance (``sknn._losses``), with R^2 as the validation
score of early stopping.
"""

from numbers import Integral

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, column_or_1d

from sknn._base import BaseTorchEstimator
from sknn._compat import Interval, StrOptions, _fit_context
from sknn._docstrings import FITTED_ATTRIBUTES, TORCH_PARAMETERS, TRAINING_PARAMETERS
from sknn._mlp import MLPLayersMixin
from sknn._sklearn_callbacks import with_callbacks
from sknn._targets import KINDS, sample_weights

#: ``loss`` -> the target kind (``sknn._targets.KINDS``)
_LOSS_KINDS = {"squared_error": "continuous", "poisson": "poisson"}


def _regressor_doc(doc):
    """The shared docstring fragments, worded for a regressor."""
    training = TRAINING_PARAMETERS.replace(
        "a stratified fraction", "a fraction").replace(
        "accuracy on\n        it", "R^2 on\n        it").replace(
        "``history_[i]['val_accuracy']``", "``history_[i]['val_r2']``")
    start = TORCH_PARAMETERS.index("    class_weight :")
    end = TORCH_PARAMETERS.index("    device :")
    torch_parameters = (TORCH_PARAMETERS[:start] + TORCH_PARAMETERS[end:]).replace(
        "``loss``, ``accuracy``, ``val_loss`` and\n        ``val_accuracy``",
        "``loss``, ``val_loss`` and\n        ``val_r2``")
    start = FITTED_ATTRIBUTES.index("    n_features_in_ :")
    end = FITTED_ATTRIBUTES.index("    history_ :")
    fitted = FITTED_ATTRIBUTES[start:end].replace(
        "(log-loss plus the L2 term)", "(half squared error, or half Poisson "
        "deviance, plus the L2 term)").replace(
        "Accuracy on the validation set", "R^2 on the validation set").replace(
        "The best validation accuracy", "The best validation R^2").replace(
        "Number of network outputs (1 for binary targets).",
        "Number of outputs: the columns of y (1 for 1-D y).").replace(
        "'softmax' or 'logistic'.", "'identity' ('exp' for loss='poisson').")
    fitted += '''    history_ : list of dict
        One record per epoch: 'epoch', 'loss', 'duration' in seconds, and
        with early stopping 'val_loss' and 'val_r2'.

    net_ : skorch.NeuralNetRegressor
        The fitted skorch net (its module, optimizer, callbacks and history).

    device_ : str
        The device the model lives on.
'''
    return (doc.replace("{training_parameters}", training)
            .replace("{torch_parameters}", torch_parameters)
            .replace("{fitted_attributes}", fitted))


class MLPRegressorTorch(MLPLayersMixin, RegressorMixin, BaseTorchEstimator):
    """Multi-layer perceptron regressor trained with PyTorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`:
    the same parameters with the same names, defaults and meaning, the same
    fitted attributes, and the same loss (half the squared error averaged
    over the outputs, or half the Poisson deviance, plus the L2 term), so a
    Pipeline or a grid search written for scikit-learn's MLP runs unchanged.
    ``score`` is R^2. Training runs on PyTorch through a skorch
    ``NeuralNetRegressor`` (``net_``), on the GPU when one is present, with
    the extras on the right of ``*`` that :class:`MLPClassifierTorch` has.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss: half the squared error, or half the Poisson deviance with a
        log link (the exponential as output activation), which needs
        ``y >= 0``.

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
    sklearn.neural_network.MLPRegressor : The NumPy implementation this
        estimator mirrors.
    MLPClassifierTorch : The same network for classification.

    Notes
    -----
    For several outputs, scikit-learn reports the squared error averaged over
    the outputs (``loss_``, ``loss_curve_``) but its gradient is that of their
    sum. sknn does the same: it trains on the sum (so its steps are
    scikit-learn's) and reports the average. L-BFGS minimizes that sum plus
    the L2 term, the objective whose gradient scikit-learn uses.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.model_selection import train_test_split
    >>> from sknn import MLPRegressorTorch
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0,
    ...                        random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> reg = MLPRegressorTorch(hidden_layer_sizes=(16,), solver="lbfgs",
    ...                         max_iter=1000, random_state=0,
    ...                         device="cpu").fit(X_train, y_train)
    >>> reg.predict(X_test[:2]).shape
    (2,)
    >>> print(f"{reg.score(X_test, y_test):.2f}")
    1.00
    """

    _parameter_constraints: dict = {
        **BaseTorchEstimator._parameter_constraints,
        "loss": [StrOptions(set(_LOSS_KINDS))],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
    }

    def __init__(
        self,
        loss="squared_error",
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
        device="auto",
        precision="float32",
        callbacks=None,
        progress_bar=False,
    ):
        self.loss = loss
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
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.progress_bar = progress_bar

    # ---------------------------------------------------------------- targets
    def _output_spec(self):
        return self.n_outputs_, _LOSS_KINDS[self.loss]

    def _encode_targets(self, y, sample_weight, incremental, first_call):
        """y as a float32 (n_samples, n_outputs) matrix and the sample
        weights; sets ``n_outputs_`` and ``out_activation_``."""
        y = check_array(y, ensure_2d=False, dtype="numeric",
                        input_name="y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for "
                "loss='poisson' (its predictions are exp(output) > 0). Use "
                "loss='squared_error', or shift y to be non-negative.")
        keeps = hasattr(self, "net_") and (self.warm_start or incremental)
        if keeps and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} output(s), but the network was fitted "
                f"with {self.n_outputs_}: warm_start and partial_fit continue "
                "training the same network. Fit afresh (warm_start=False) "
                "for another number of outputs.")
        self.n_outputs_ = y.shape[1]
        self.out_activation_ = KINDS[_LOSS_KINDS[self.loss]][0]
        return (y.astype(np.float32),
                sample_weights(None, y, sample_weight, None))

    # ---------------------------------------------------------------- training
    @available_if(BaseTorchEstimator._check_solver)
    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data.

        Only for the stochastic solvers ('adam' and 'sgd').

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    # -------------------------------------------------------------- prediction
    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values: 1-D for a single output, as scikit-learn's.
        """
        y = self._forward(X).detach().cpu().numpy().astype(np.float64)
        if self.out_activation_ == "exp":
            y = np.exp(y)
        y = y.astype(getattr(self, "_input_dtype", np.float64), copy=False)
        return y.ravel() if y.shape[1] == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


MLPRegressorTorch.__doc__ = _regressor_doc(MLPRegressorTorch.__doc__)

__all__ = ["MLPRegressorTorch"]
