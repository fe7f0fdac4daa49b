"""BaseTorchEstimator: the scikit-learn contract sknn's estimators share, and
BaseTorchClassifier, what MLPClassifierTorch and CNNClassifier add to it.

The base holds the parameters and their constraints, the validation of X,
``fit``, tags, pickling and scikit-learn's private attributes that its own
tests read; the classifier base holds ``classes_``, the encoding of targets
and class weights, ``partial_fit(..., classes)`` and ``predict*``
(``sknn._regressor`` is the regressor's counterpart). Training is one call into
``sknn._training``. torch and skorch are imported when a model is fitted,
predicts or is loaded, not with the class: ``get_params``, ``clone`` and
``repr`` need neither.

Subclasses provide ``_build_module`` (and may count its parameters without
building it, ``_n_parameters``) and, for images, the input layout hooks
``_flatten_X``, ``_input_tensor``, ``_batch_transform`` and ``_batch_work``.
"""

import math
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from sknn import _options
from sknn._compat import (
    Interval,
    Options,
    StrOptions,
    _check_partial_fit_first_call,
    _check_sample_weight,
    _fit_context,
    warn_external,
)
from sknn._sklearn_callbacks import (  # sklearn.callback (1.9+)
    CallbackSupportMixin,
    fit_task,
    with_callbacks,
)
from sknn._targets import TargetEncoder, sample_weights

_FLOAT32_MAX = float(np.finfo(np.float32).max)

#: fitted attributes derived from ``net_`` by ``_set_layer_attributes``: not
#: pickled nor saved, rebuilt on load
DERIVED_ATTRIBUTES = ("coefs_", "intercepts_", "n_layers_")

#: the estimator parameters a fit reads as they are (``FitConfig`` fields)
_FIT_PARAMETERS = (
    "solver", "alpha", "batch_size", "learning_rate", "learning_rate_init",
    "power_t", "max_iter", "shuffle", "tol", "momentum", "nesterovs_momentum",
    "early_stopping", "validation_fraction", "beta_1", "beta_2", "epsilon",
    "n_iter_no_change", "max_fun", "warm_start", "batch_norm", "precision",
    "verbose", "progress_bar",
)


def _check_float32_range(X):
    """Refuse float64 values the network's float32 arithmetic would turn into
    infinities (and NaN probabilities) at prediction."""
    if X.dtype == np.float64 and X.size and (
            X.max() > _FLOAT32_MAX or X.min() < -_FLOAT32_MAX):
        raise ValueError(
            "Input X contains a value too large for dtype('float32'), in which "
            f"the network computes (largest magnitude {_FLOAT32_MAX:.4g}); got "
            f"{max(X.max(), -X.min()):.4g}. Scale X first, for instance with "
            "sklearn.preprocessing.StandardScaler.")


class BaseTorchEstimator(CallbackSupportMixin, BaseEstimator):
    """Shared machinery of the sknn estimators. Not for direct use.

    Subclasses provide ``_encode_targets`` (y for the loss, per-sample
    weights, ``n_outputs_`` and ``out_activation_``) and ``_output_spec``.
    """

    _parameter_constraints: dict = {
        "activation": [StrOptions(set(_options.ACTIVATIONS))],
        "solver": [StrOptions(set(_options.SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "weight_init": [StrOptions(set(_options.WEIGHT_INITS))],
        "device": [str],
        "precision": [StrOptions(set(_options.PRECISIONS))],
        "callbacks": [list, tuple, None],
        "progress_bar": ["boolean"],
    }

    # ------------------------------------------------------------ subclass hooks
    def _build_module(self, n_features, n_outputs):
        """The torch module for this input width and number of outputs."""
        raise NotImplementedError

    def _flatten_X(self, X, reset):
        """X as a 2-D (n_samples, n_features) array-like, before validation."""
        return X

    def _input_tensor(self, X, device):
        """The validated 2-D float array X as the module's input tensor."""
        from sknn._data import as_float32_tensor

        return as_float32_tensor(X, device)

    def _batch_transform(self):
        """A callable applied to training batches (augmentation), or None."""
        return None

    def _n_parameters(self, n_features, n_outputs):
        """The number of parameters of ``_build_module(n_features,
        n_outputs)``, or None to count them on a network built on torch's
        'meta' device (no storage)."""
        return None

    def _batch_work(self, batch_size, module):
        """Rough multiply-accumulates of one training batch (forward pass)."""
        return batch_size * sum(p.numel() for p in module.parameters())

    def _set_layer_attributes(self):
        """Architecture attributes (``coefs_``, ``n_layers_``...) from ``net_``."""

    def _output_spec(self):
        """``(n_outputs, output_kind)``: the network's outputs and their kind
        (``sknn._targets.KINDS``), once targets are encoded."""
        raise NotImplementedError

    def _encode_targets(self, y, sample_weight, incremental, first_call):
        """``(y for the loss, per-sample weights or None)``; sets
        ``n_outputs_`` and ``out_activation_``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- data
    def _validate_X(self, X, reset=False):
        """Validated 2-D float X for prediction: the one place it is checked."""
        X = self._flatten_X(X, reset)
        if reset or not self._is_valid_predict_array(X):
            X = validate_data(self, X, accept_sparse=["csr", "csc"],
                              dtype=(np.float64, np.float32), reset=reset)
            X = X.toarray() if sparse.issparse(X) else X
            _check_float32_range(X)
        return X

    def _forward(self, X):
        """The fitted network's outputs (logits) for X, validated: the
        prediction path of every estimator."""
        if not hasattr(self, "net_"):  # check_is_fitted's tags cost ~6 us
            check_is_fitted(self)
        X = self._validate_X(X)
        return self.net_.forward_logits(self._input_tensor(X, self.device_))

    def _validate_Xy(self, X, y, reset):
        """Validated 2-D float X and y: float32 or float64 arrays as given,
        anything else (lists, integers) float64, as scikit-learn's MLP."""
        X = self._flatten_X(X, reset)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             dtype=(np.float64, np.float32), multi_output=True,
                             reset=reset)
        # float64 values beyond float32's range are not refused here: as in
        # scikit-learn, the fit raises "Solver produced non-finite parameter
        # weights", at the end of the first epoch (sknn._net)
        if reset:
            # scikit-learn's coefs_ follow the dtype of X; training is float32
            self._input_dtype = X.dtype
        return (X.toarray() if sparse.issparse(X) else X), y

    def _is_valid_predict_array(self, X):
        """True when X is a plain finite float ndarray of the fitted width, the
        case where ``validate_data(reset=False)`` would only confirm it.

        Single-row prediction is latency-bound and ``validate_data`` alone costs
        more than the forward pass of a small net; every other input (lists,
        DataFrames, sparse, other dtypes, wrong width, NaN/inf, float64 values
        beyond float32's range) goes through ``validate_data`` and gets its
        errors and warnings.
        """
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype.char in "fd"
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
            # NaN fails both tests: a NaN sum, a NaN maximum
            and (math.isfinite(X.sum()) if X.dtype.char == "f"
                 else float(np.abs(X).max()) <= _FLOAT32_MAX)
        )

    def _batch_size(self, n_samples):
        """Rows per batch for ``n_samples`` training rows, as a fit resolves
        ``batch_size`` (``sknn._fused`` calls it)."""
        from sknn._training import resolve_batch_size

        size, warning = resolve_batch_size(self.batch_size, n_samples)
        if warning is not None:
            warn_external(*warning)
        return size

    # ---------------------------------------------------------------- training
    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (images for :class:`CNNClassifier`).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Labels of any type, or a 0/1 one-hot or multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _options.STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver!r} is not stochastic.")
        return True

    def _fit(self, X, y, sample_weight, incremental, first_call=False):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        reset = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        X, y = self._validate_Xy(X, y, reset=reset)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        y_encoded, weight = self._encode_targets(y, sample_weight, incremental,
                                                 first_call)
        from sknn import _training

        # the seed, then the validation split, from one RandomState
        random_state = check_random_state(self.random_state)
        seed = int(random_state.randint(_training.MAX_SEED))
        if reset or not hasattr(self, "device_"):
            from sknn._parallel import resolve_device

            self.device_ = resolve_device(self.device)
        config = self._fit_config(X.shape[1], incremental=incremental, seed=seed,
                                  split_random_state=random_state)
        # scikit-learn's callbacks (1.9+) see the fit end with every fitted
        # attribute set
        with fit_task(self, X, y, sample_weight, incremental):
            result = _training.fit(config, X, y_encoded, weight,
                                   net=None if reset else self.net_)
            self.net_ = result.net
            for name, value in result.attributes.items():
                setattr(self, name, value)
            self._set_layer_attributes()
        for message, category in result.warnings:
            warn_external(message, category)
        return self

    def _fit_config(self, n_features, incremental=False, seed=0,
                    split_random_state=None):
        """The frozen configuration of a fit (``sknn._training.FitConfig``):
        the parameters training reads and this estimator's hooks."""
        from sknn._training import FitConfig

        n_outputs, output_kind = self._output_spec()
        return FitConfig(
            build_module=self._build_module,
            input_tensor=self._input_tensor,
            batch_transform=self._batch_transform(),
            batch_work=self._batch_work,
            count_parameters=self._n_parameters,
            n_features=n_features,
            n_outputs=n_outputs,
            output_kind=output_kind,
            estimator_name=type(self).__name__,
            **{name: getattr(self, name) for name in _FIT_PARAMETERS},
            callbacks=tuple(self.callbacks or ()),
            seed=seed,
            split_random_state=split_random_state,
            device=self.device_,
            incremental=incremental,
        )

    def _rebuild(self, module_state):
        """Build ``net_`` on the CPU from fitted metadata and load the weights.

        For loaders that restore a model without pickle (``sknn.load``). Set
        ``target_encoder_`` and ``classes_`` (a classifier) or ``n_outputs_``
        (a regressor), ``n_features_in_`` (and
        ``feature_names_in_``, and ``input_shape_`` for images) first;
        ``module_state`` is the module's ``state_dict``. Sets ``net_``,
        ``device_`` and the architecture attributes (``coefs_``, ...); the
        history attributes (``loss_curve_``, ``n_iter_``...) are the caller's.
        The optimizer is new: ``partial_fit`` and a warm-started ``fit``
        continue from the loaded weights.
        """
        from sknn import _training

        self.device_ = "cpu"
        with _training.torch_rng(0, "cpu"):
            self.net_ = _training.build_net(self._fit_config(self.n_features_in_))
        self.net_.module_.load_state_dict(module_state)
        self._set_layer_attributes()
        return self

    # -------------------------------------------------------------- prediction
    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    # ---------------------------------------------------------------- sklearn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    @property
    def _no_improvement_count(self):
        # scikit-learn's private counter, which its own tests read
        stopping = dict(self.net_.callbacks_).get("sklearn_stopping")
        if stopping is None:
            raise AttributeError("no sklearn_stopping callback in this fit")
        return stopping.no_improvement_count_

    @property
    def _optimizer(self):
        # what scikit-learn's own tests read of its private optimizer object
        from sknn._net import learning_rate

        return SimpleNamespace(learning_rate=learning_rate(self.net_))

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        """What a pickle (``joblib.dump``) holds: what prediction needs.

        The net goes without its optimizer's state (Adam's moments are twice
        the weights) and its per-batch history records, and ``coefs_`` and
        ``intercepts_`` (copies of the weights) are rebuilt on load. A loaded
        model predicts identically; ``partial_fit`` and a warm-started ``fit``
        continue from its weights with a new optimizer. For an exact resume of
        training, use skorch's ``Checkpoint`` and ``LoadInitState``.
        """
        # a copy: object.__getstate__ may hand back the instance's own dict
        state = dict(super().__getstate__())
        if "net_" in state:
            from sknn._net import slim_copy

            state["net_"] = slim_copy(state["net_"])
            for derived in DERIVED_ATTRIBUTES:
                state.pop(derived, None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "net_" not in self.__dict__:
            return
        from sknn._net import restore_slim
        from sknn._parallel import map_location

        # skorch maps the net's tensors; the estimator's device follows it
        self.device_ = map_location(self.device_)
        self.net_.device = self.device_
        restore_slim(self.net_)
        self._set_layer_attributes()


class BaseTorchClassifier(ClassifierMixin, BaseTorchEstimator):
    """Shared machinery of the sknn classifiers. Not for direct use."""

    _parameter_constraints: dict = {
        **BaseTorchEstimator._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def _output_spec(self):
        return self.target_encoder_.n_outputs_, self.target_encoder_.output_kind

    def _encode_targets(self, y, sample_weight, incremental, first_call):
        """y encoded for the loss and the per-sample weights (sample and class
        weights); ``classes_`` learnt, or checked against the previous call's,
        as scikit-learn's MLP does."""
        if (first_call or not hasattr(self, "target_encoder_")
                or (not self.warm_start and not incremental)):
            classes = self.classes_ if first_call else None
            self.target_encoder_ = TargetEncoder(classes=classes).fit(y)
            self.classes_ = self.target_encoder_.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously got "
                        f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}.")
        y_encoded = self.target_encoder_.transform(y)
        self.n_outputs_ = self.target_encoder_.n_outputs_
        self.out_activation_ = self.target_encoder_.out_activation_
        return y_encoded, sample_weights(self.target_encoder_, y_encoded,
                                         sample_weight, self.class_weight)


    @available_if(BaseTorchEstimator._check_solver)
    @with_callbacks
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data.

        Only for the stochastic solvers ('adam' and 'sgd').

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit, as ``np.unique(y_all)``.
            Required on the first call, optional afterwards; ``y`` need not
            show every class.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first_call = _check_partial_fit_first_call(self, classes)
        return self._fit(X, y, sample_weight, incremental=True,
                         first_call=first_call)

    # -------------------------------------------------------------- prediction
    def _outputs(self, X, log=False):
        from sknn._net import output_probabilities

        return output_probabilities(self._forward(X), self.net_.target_kind,
                                    log=log)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of ``classes_``; for
            multilabel targets, the probability of each label independently.
        """
        return self._outputs(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``; where a probability is too small for
            float64, the log-softmax or log-sigmoid of the logits, finite
            where scikit-learn's is ``-inf``.
        """
        return self._outputs(X, log=True)

    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Predictions in the format ``y`` had in ``fit``: labels, one-hot rows
            or multilabel indicator rows.
        """
        proba = self.predict_proba(X)
        return self.target_encoder_.inverse_transform(proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
