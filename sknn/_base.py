"""BaseTorchClassifier: what MLPClassifierTorch and CNNClassifier share.

Parameters and their constraints, ``fit``/``partial_fit``/``predict*``/``score``,
tags, scikit-learn's fitted attributes, and the assembly of the skorch net kept
as ``net_``. Subclasses provide ``_build_module`` and, for images, the input
layout hooks ``_flatten_X`` and ``_input_tensor``.
"""

import copy
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from sknn._callbacks import InvScalingLR, NoImprovementStopping, SklearnPrintLog
from sknn._data import (
    TensorDataset,
    as_float32_tensor,
    as_target_tensor,
    combined_sample_weight,
)
from sknn._modules import ACTIVATIONS, WEIGHT_INITS
from sknn._net import TensorNet, TrainValid
from sknn._parallel import (
    fit_threads,
    isolate_checkpoints,
    map_location,
    resolve_device,
)
from sknn._targets import TargetEncoder

_MAX_SEED = np.iinfo(np.int32).max


class BaseTorchClassifier(ClassifierMixin, BaseEstimator):
    """Shared machinery of the sknn classifiers. Not for direct use."""

    _parameter_constraints: dict = {
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"adam", "sgd", "lbfgs"})],
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
        "weight_init": [StrOptions(set(WEIGHT_INITS))],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [str],
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
        """The validated 2-D float32 array X as the module's input tensor."""
        return as_float32_tensor(X, device)

    def _batch_transform(self):
        """A callable applied to training batches (augmentation), or None."""
        return None

    # ------------------------------------------------------------------ helpers
    def _validate_X(self, X, reset=False):
        """Validated 2-D float32 X for prediction: the one place it is checked."""
        X = self._flatten_X(X, reset)
        if not reset and self._is_valid_predict_array(X):
            return X
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=np.float32,
                          reset=reset)
        return X.toarray() if sparse.issparse(X) else X

    def _validate_Xy(self, X, y, reset):
        """Validated 2-D float32 X and y for fitting."""
        X = self._flatten_X(X, reset)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             dtype=np.float32, multi_output=True, reset=reset)
        return (X.toarray() if sparse.issparse(X) else X), y

    def _is_valid_predict_array(self, X):
        """True when X is a plain finite float ndarray of the fitted width, the
        case where ``validate_data(reset=False)`` would only confirm it.

        Single-row prediction is latency-bound and ``validate_data`` alone costs
        more than the forward pass of a small net; every other input (lists,
        DataFrames, sparse, other dtypes, wrong width, NaN/inf) goes through
        ``validate_data`` and gets its errors and warnings.
        """
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in (np.float32, np.float64)
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
            and bool(np.isfinite(X.sum()))
        )

    def _batch_work(self, batch_size):
        """Rough multiply-accumulates of one training batch (forward pass)."""
        return batch_size * sum(p.numel() for p in self.net_.module_.parameters())

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is "
                "going to be clipped", stacklevel=2
            )
        return int(np.clip(self.batch_size, 1, n_samples))

    def _optimizer(self, batch_weight):
        """(optimizer class, its keyword arguments) for the ``solver``.

        ``batch_weight`` is the total sample weight of a full batch.
        """
        # scikit-learn's penalty is 0.5 * alpha * ||W||^2 / (sum of the batch's
        # sample weights), added to the weighted mean batch loss: the
        # optimizer's L2 weight decay, on weights only.
        decay = self.alpha / batch_weight
        fused = {"fused": True} if self._fused_ok() else {}
        if self.solver == "adam":
            return torch.optim.Adam, dict(
                lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                eps=self.epsilon, weight_decay=decay, **fused)
        if self.solver == "sgd":
            return torch.optim.SGD, dict(
                lr=self.learning_rate_init, momentum=self.momentum,
                nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                weight_decay=decay, **fused)
        return torch.optim.LBFGS, dict(
            lr=1.0, max_iter=self.max_iter, max_eval=self.max_fun,
            tolerance_grad=self.tol, tolerance_change=0.0, history_size=10,
            line_search_fn="strong_wolfe", weight_decay=decay)

    def _fused_ok(self):
        # fused Adam/SGD kernels exist for CPU and CUDA from torch 2.4 on
        major, minor = (int(v) for v in torch.__version__.split(".")[:2])
        return (major, minor) >= (2, 4) and torch.device(self.device_).type in (
            "cpu", "cuda")

    def _callbacks_for_fit(self):
        if self.solver == "lbfgs":
            own = []
        else:
            own = [("sklearn_stopping", NoImprovementStopping(
                monitor="valid_acc" if self.early_stopping else "train_loss",
                tol=self.tol, n_iter_no_change=self.n_iter_no_change,
                adaptive=self.solver == "sgd" and self.learning_rate == "adaptive",
                restore_best=self.early_stopping))]
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                own.append(("invscaling", InvScalingLR(
                    self.learning_rate_init, self.power_t)))
        own.append(("sklearn_print_log", SklearnPrintLog()))
        if self.progress_bar:
            from skorch.callbacks import ProgressBar

            own.append(("progress_bar", ProgressBar()))
        # the user's callbacks are parameters: train copies, never the originals
        return own + isolate_checkpoints(list(copy.deepcopy(self.callbacks or [])))

    def _optimizer_and_penalty(self, batch_weight):
        """(optimizer class, its kwargs, the L2 coefficient the loss adds)."""
        optimizer, opt_kwargs = self._optimizer(batch_weight)
        penalty = 0.0
        if optimizer is torch.optim.LBFGS:
            # L-BFGS takes no parameter groups: the L2 term goes into the loss
            penalty = opt_kwargs.pop("weight_decay")
        return optimizer, opt_kwargs, penalty

    def _new_net(self, n_features, batch_size, batch_weight):
        encoder = self.target_encoder_
        optimizer, opt_kwargs, penalty = self._optimizer_and_penalty(batch_weight)
        criterion = (torch.nn.CrossEntropyLoss if encoder.loss_family == "ce"
                     else torch.nn.BCEWithLogitsLoss)
        net = TensorNet(
            self._build_module(n_features, encoder.n_outputs_),
            criterion=criterion,
            criterion__reduction="none",
            optimizer=optimizer,
            loss_family=encoder.loss_family,
            penalty_in_loss=penalty,
            batch_transform=self._batch_transform(),
            max_epochs=self.max_iter,
            batch_size=batch_size,
            iterator_train__shuffle=self.shuffle,
            train_split=None,
            callbacks=self._callbacks_for_fit(),
            device=self.device_,
            warm_start=True,
            verbose=self.verbose,
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
        )
        return net.initialize()

    def _encode_targets(self, y, incremental, classes):
        first = not hasattr(self, "target_encoder_") or (
            not self.warm_start and not incremental)
        if first:
            if incremental and classes is None and np.ndim(y) == 1:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit.")
            self.target_encoder_ = TargetEncoder(classes=classes).fit(y)
            self.classes_ = self.target_encoder_.classes_
        elif self.warm_start and not incremental and np.ndim(y) == 1:
            seen = np.unique(y)
            if set(seen) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as "
                    f"in the previous call to fit. Previously got {self.classes_}, "
                    f"`y` has {seen}"
                )
        return self.target_encoder_.transform(y)

    def _datasets(self, X, y_enc, weight, random_state):
        """Device tensors, split into training and validation when early
        stopping asks for a validation set."""
        device = self.device_
        data = TensorDataset(
            self._input_tensor(X, device), as_target_tensor(y_enc, device),
            None if weight is None else torch.from_numpy(weight).to(device))
        if not self.early_stopping:
            return data, None
        n = len(data)
        n_valid = int(np.ceil(self.validation_fraction * n))
        if n_valid < 2 or n - n_valid < 1:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        stratify = y_enc if np.ndim(y_enc) == 1 else (
            y_enc.ravel() if self.target_encoder_.kind_ == "binary" else None)
        train_idx, valid_idx = train_test_split(
            np.arange(n), test_size=n_valid, random_state=random_state,
            stratify=stratify)
        return (data.subset(torch.from_numpy(train_idx).to(device)),
                data.subset(torch.from_numpy(valid_idx).to(device)))

    # ---------------------------------------------------------------- training
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
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The targets.
        classes : array of shape (n_classes,), default=None
            All classes across calls; required on the first call for 1-D y.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the loss.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if not hasattr(self, "net_"):
            self._validate_params()
        if self.solver == "lbfgs":
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver!r} is not stochastic.")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "net_") or (
            not self.warm_start and not incremental)
        X, y = self._validate_Xy(X, y, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        y_enc = self._encode_targets(y, incremental, classes)
        encoder = self.target_encoder_
        labels = (y if encoder.kind_ in ("binary", "multiclass")
                  else encoder.class_indices(y_enc) if encoder.kind_ == "onehot"
                  else y_enc)
        weight = combined_sample_weight(labels, sample_weight, self.class_weight)

        random_state = check_random_state(self.random_state)
        seed = int(random_state.randint(_MAX_SEED))
        self.device_ = resolve_device(self.device)
        train, valid = self._datasets(X, y_enc, weight, random_state)
        batch_size = len(train) if self.solver == "lbfgs" else self._batch_size(
            len(train))

        # the sample weight of a full batch scales the L2 term, as in sklearn
        batch_weight = batch_size * (1.0 if weight is None else float(weight.mean()))
        with fit_threads(), _seeded_torch_rng(seed, self.device_):
            if first_pass:
                self.net_ = self._new_net(X.shape[1], batch_size, batch_weight)
            else:
                self._update_net(batch_size, batch_weight, incremental)
            self.net_.generator_ = torch.Generator().manual_seed(seed)
            epochs_before = len(self.net_.history)
            epochs = 1 if incremental or self.solver == "lbfgs" else self.max_iter
            try:
                with _one_thread_if_small(self._batch_work(batch_size)):
                    self.net_.partial_fit(
                        TrainValid(train, valid), None, epochs=epochs)
            finally:
                self.net_.generator_ = None
        self._after_fit(epochs_before, incremental)
        return self

    def _update_net(self, batch_size, batch_weight, incremental):
        """Carry the current parameters into a net that keeps training."""
        net = self.net_
        net.batch_size = batch_size
        net.batch_transform = self._batch_transform()
        if incremental:
            return  # partial_fit keeps the optimizer and its state
        # as scikit-learn: a warm-started fit gets a new optimizer
        _, opt_kwargs, net.penalty_in_loss = self._optimizer_and_penalty(
            batch_weight)
        for key, value in opt_kwargs.items():
            setattr(net, f"optimizer__{key}", value)
        net.initialize_optimizer()

    def _after_fit(self, epochs_before, incremental):
        """Set scikit-learn's fitted attributes from the net and its history."""
        net = self.net_
        history = net.history
        self.n_iter_ = len(history) - epochs_before
        if self.solver == "lbfgs":
            state = net.optimizer_.state[net.optimizer_.param_groups[0]["params"][0]]
            self.n_iter_ = int(state.get("n_iter", 1))
        self.loss_curve_ = [float(row["train_loss"]) for row in history]
        self.loss_ = self.loss_curve_[-1]
        self.t_ = int(sum(row["train_samples"] for row in history))
        stopping = dict(net.callbacks_).get("sklearn_stopping")
        if self.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = [float(row["valid_acc"]) for row in history]
            self.best_validation_score_ = max(self.validation_scores_)
        else:
            self.best_loss_ = (stopping.best_ if stopping is not None
                               else min(self.loss_curve_))
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.n_outputs_ = self.target_encoder_.n_outputs_
        self.out_activation_ = self.target_encoder_.out_activation_
        self.history_ = [_history_record(row) for row in history]
        self._set_layer_attributes()

        params = [p for p in net.module_.parameters()]
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may "
                "contain large values and need to be preprocessed."
            )
        if net.interrupted_:
            warnings.warn("Training interrupted by user.", stacklevel=2)
        elif (not incremental and self.solver != "lbfgs"
              and net.stop_reason_ is None and self.n_iter_ == self.max_iter):
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning, stacklevel=2)
        elif self.solver == "lbfgs" and self.n_iter_ >= self.max_iter:
            warnings.warn(
                "lbfgs failed to converge (status=1): STOP: TOTAL NO. OF "
                "ITERATIONS REACHED LIMIT. Increase the number of iterations "
                "(max_iter) or scale the data.", ConvergenceWarning, stacklevel=2)

    def _set_layer_attributes(self):
        """Subclasses set architecture attributes (``coefs_``, ``n_layers_``...)."""

    def _rebuild(self, module_state):
        """Build ``net_`` on the CPU from fitted metadata and load the weights.

        For loaders that restore a model without pickle (``sknn.load``). Set
        ``target_encoder_``, ``classes_``, ``n_features_in_`` (and
        ``feature_names_in_``, and ``input_shape_`` for images) first;
        ``module_state`` is the module's ``state_dict``. Sets ``net_``,
        ``device_`` and the architecture attributes (``coefs_``, ...); the
        history attributes (``loss_curve_``, ``n_iter_``...) are the caller's.
        The optimizer is new: ``partial_fit`` and a warm-started ``fit``
        continue from the loaded weights.
        """
        self.device_ = "cpu"
        with _seeded_torch_rng(0, "cpu"):
            self.net_ = self._new_net(self.n_features_in_, 1, 1.0)
        self.net_.module_.load_state_dict(module_state)
        self._set_layer_attributes()
        return self

    # -------------------------------------------------------------- prediction
    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _outputs(self, X):
        check_is_fitted(self)
        X = self._validate_X(X)
        return self.net_.forward_outputs(self._input_tensor(X, self.device_))

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
        outputs = self._outputs(X).cpu().numpy().astype(np.float64)
        return self.target_encoder_.proba_from_outputs(outputs)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

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

    # ---------------------------------------------------------------- sklearn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        # skorch maps the net's tensors; the estimator's device follows it
        if "device_" in self.__dict__:
            self.device_ = map_location(self.device_)
            if hasattr(self, "net_"):
                self.net_.device = self.device_


#: below this many multiply-accumulates per batch a fit runs on one CPU thread
SMALL_BATCH_WORK = 4_000_000


@contextmanager
def _one_thread_if_small(work):
    """One torch thread for small per-batch work, restored afterwards.

    Small matrices gain nothing from a second thread, and under CPU contention
    (another process, parallel grid-search workers) OpenMP's waiting threads
    make such fits many times slower: measured here on a 300 x 5 problem,
    0.26 s with one thread and 9.2 s with two while the other core was busy.
    """
    before = torch.get_num_threads()
    if work >= SMALL_BATCH_WORK or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _seeded_torch_rng(seed, device):
    """Seed torch's global RNG for the duration of a fit, then put the caller's
    RNG state back, so fitting leaves the global state as it was."""
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        # seed only the generators in use: torch.manual_seed() also queues a
        # lazy CUDA seeding that records a stack trace on every call
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield


def _history_record(row):
    """One epoch of skorch history as the ``history_`` record users read."""
    record = {
        "epoch": int(row["epoch"]),
        "loss": float(row["train_loss"]),
        "accuracy": float(row["train_acc"]),
        "duration": float(row.get("dur", float("nan"))),
    }
    if "valid_loss" in row:
        record["val_loss"] = float(row["valid_loss"])
        record["val_accuracy"] = float(row["valid_acc"])
    return record
