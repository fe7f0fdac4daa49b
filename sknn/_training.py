"""Training: the policies of a fit and the one call that runs it.

The seam between an estimator and training is data in, result out:
``sknn._base`` builds a frozen :class:`FitConfig` (the parameters training
reads, resolved, and the estimator's module and data hooks) and gets back a
:class:`FitResult` (the net, the fitted attributes as a mapping, the warnings
to emit), which it assigns and emits. Training never reads or writes an
estimator. It owns the net's configuration through skorch's public
parameters (the data as a torch ``Dataset``, ``predefined_split``, the
slicing iterators, the optimizer with scikit-learn's L2 term as parameter
groups, skorch's default scorers beside the callbacks that give
scikit-learn's semantics), the scopes of a fit (torch's RNG, CPU threads,
mixed precision, Ctrl-C), the checks made before anything is allocated, and
the translation of the net's history into scikit-learn's fitted attributes.
"""

import copy
import os
import threading
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from skorch.helper import predefined_split

from sknn import _optim
from sknn._callbacks import (
    BatchLossScoring,
    CtrlCWatch,
    InvScalingLR,
    NoImprovementStopping,
    NonFiniteStop,
    RestoreBestWeights,
    SklearnPrintLog,
    check_callbacks,
    validation_accuracy,
    validation_r2,
)
from sknn._data import BatchIterator, TensorDataset, as_target_tensor
from sknn._fitted import fitted_attributes
from sknn._modules import L2_PATTERNS
from sknn._net import (  # noqa: F401  (older pickles name the last two here)
    OUTPUTS,
    PREDICT_BATCH_SIZE,
    SknnNet,
    _binary_proba,
    _softmax,
    net_class,
)
from sknn._parallel import isolate_checkpoints
from sknn._progress import EpochProgressBar
from sknn._sklearn_callbacks import add_net_callbacks
from sknn._targets import REGRESSION_KINDS
from sknn._threads import ThreadTuner, fit_threads

#: the seed of a fit is ``check_random_state(random_state).randint(MAX_SEED)``,
#: drawn before the validation split
MAX_SEED = np.iinfo(np.int32).max


# ------------------------------------------------------------------- the seam
@dataclass(frozen=True)
class FitConfig:
    """Everything a fit reads: the estimator's parameters, resolved, and its
    hooks. Built by ``BaseTorchEstimator._fit_config``."""

    # the network and its data: the estimator's hooks
    build_module: Callable[[int, int], torch.nn.Module]
    input_tensor: Callable[[np.ndarray, str], torch.Tensor]
    batch_transform: Callable | None = None
    batch_work: Callable[[int, torch.nn.Module], float] | None = None
    count_parameters: Callable[[int, int], int | None] | None = None
    n_features: int = 1
    n_outputs: int = 1
    output_kind: str = "multiclass"
    estimator_name: str = "estimator"
    # the solver (scikit-learn's parameters)
    solver: str = "adam"
    alpha: float = 1e-4
    batch_size: Any = "auto"
    learning_rate: str = "constant"
    learning_rate_init: float = 1e-3
    power_t: float = 0.5
    max_iter: int = 200
    shuffle: bool = True
    tol: float = 1e-4
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    early_stopping: bool = False
    validation_fraction: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    n_iter_no_change: float = 10
    max_fun: int = 15000
    warm_start: bool = False
    batch_norm: bool = False
    # the run
    seed: int = 0
    split_random_state: Any = None
    device: str = "cpu"
    precision: str = "float32"
    verbose: Any = False
    callbacks: tuple = ()
    progress_bar: bool = False
    incremental: bool = False

    @property
    def stochastic(self):
        return self.solver != "lbfgs"

    @property
    def validates(self):
        """Whether the fit holds out a validation set: scikit-learn ignores
        ``early_stopping`` for L-BFGS."""
        return bool(self.early_stopping) and self.stochastic

    @property
    def regression(self):
        """Whether the net is a regressor (``sknn._targets.REGRESSION_KINDS``)."""
        return self.output_kind in REGRESSION_KINDS

    @property
    def score_key(self):
        """The history key of the validation score: scikit-learn's accuracy
        for a classifier, R^2 for a regressor."""
        return "valid_r2" if self.regression else "valid_acc"


@dataclass
class FitResult:
    """What a fit gives back: the trained net, the fitted attributes for the
    estimator to set, and the warnings for it to emit, in order."""

    net: SknnNet
    attributes: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


# ----------------------------------------------------------------- policies
def _fused_ok(device):
    # fused Adam/SGD kernels exist for CPU and CUDA from torch 2.4 on
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4) and torch.device(device).type in ("cpu", "cuda")


def optimizer_policy(config, l2_coef):
    """The solver as skorch net parameters: the optimizer class, its settings,
    and scikit-learn's L2 term.

    scikit-learn adds ``0.5 * alpha * ||W||^2 / (sum of the batch's sample
    weights)`` to the mean batch loss; its gradient is weight decay
    ``l2_coef = alpha / batch_weight`` on the weights :data:`L2_PATTERNS`
    select, an optimizer parameter group. L-BFGS takes no parameter groups,
    so the term goes into its loss (``penalty_in_loss``).
    """
    if not isinstance(config, FitConfig):  # a fitted estimator (sknn._fused)
        config = config._fit_config(config.n_features_in_)
    c = config
    fused = {"optimizer__fused": True} if _fused_ok(c.device) else {}
    groups = [(pattern, {"weight_decay": l2_coef}) for pattern in L2_PATTERNS]
    # torch's classes, with a shorter fused CPU step (sknn._optim)
    if c.solver == "adam":
        return dict(optimizer=_optim.Adam if fused else torch.optim.Adam,
                    lr=c.learning_rate_init,
                    optimizer__betas=(c.beta_1, c.beta_2),
                    optimizer__eps=c.epsilon, optimizer__param_groups=groups,
                    penalty_in_loss=0.0, **fused)
    if c.solver == "sgd":
        return dict(optimizer=_optim.SGD if fused else torch.optim.SGD,
                    lr=c.learning_rate_init,
                    optimizer__momentum=c.momentum,
                    optimizer__nesterov=bool(c.nesterovs_momentum
                                             and c.momentum > 0),
                    optimizer__param_groups=groups, penalty_in_loss=0.0, **fused)
    return dict(optimizer=torch.optim.LBFGS, lr=1.0,
                optimizer__max_iter=c.max_iter, optimizer__max_eval=c.max_fun,
                optimizer__tolerance_grad=c.tol, optimizer__tolerance_change=0.0,
                optimizer__history_size=10,
                optimizer__line_search_fn="strong_wolfe", penalty_in_loss=l2_coef)


def _bf16_native(device):
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def precision_policy(precision, device, solver):
    """``(autocast dtype or None, GradScaler or None)`` for ``precision``.

    'auto' is bfloat16 where the hardware computes it natively (a CPU with
    AVX-512 BF16 or AMX, a bf16-capable GPU) and float32 elsewhere.
    """
    device = torch.device(device)
    if precision == "auto":
        precision = "bfloat16" if _bf16_native(device) else "float32"
    if precision == "float32":
        return None, None
    if precision == "bfloat16":
        return torch.bfloat16, None
    if device.type != "cuda":
        raise ValueError(
            f"precision='float16' needs a CUDA device, but the model trains on "
            f"{device.type!r}: float16 autocast with loss scaling is a GPU "
            "technique. Use precision='bfloat16' (or 'auto') on this device, or "
            "'float32'.")
    if solver == "lbfgs":
        raise ValueError(
            "precision='float16' cannot be used with solver='lbfgs' (loss "
            "scaling does not work with L-BFGS's line search). Use "
            "precision='bfloat16' or 'float32'.")
    return torch.float16, torch.amp.GradScaler("cuda")


def l2_coefficient(alpha, batch_size, weight):
    """scikit-learn's L2 term as weight decay: ``alpha / (batch_size * mean
    weight)``, the sample weight of a full batch.

    scikit-learn divides each batch's term by that batch's weight sum; where
    the weights average zero (or less: negative weights), while batches do
    not, the mean absolute weight stands for it.
    """
    mean = 1.0 if weight is None else float(weight.mean())
    if mean <= 0:
        mean = float(np.abs(weight).mean())
    return alpha / (batch_size * mean)


def resolve_batch_size(batch_size, n_samples):
    """``(rows per batch, warning or None)``, as scikit-learn resolves
    ``batch_size`` ('auto' is ``min(200, n_samples)``)."""
    if batch_size == "auto":
        return min(200, n_samples), None
    warning = None
    if batch_size > n_samples:
        warning = ("Got `batch_size` less than 1 or larger than sample size. "
                   "It is going to be clipped", UserWarning)
    return int(np.clip(batch_size, 1, n_samples)), warning


# ---------------------------------------------------------------- callbacks
def _default_overrides(config):
    """The skorch default callbacks sknn replaces: sklearn-worded printing in
    place of skorch's ``print_log`` table, skorch's loss scorers read in one
    pass, and a classifier's sample-weighted ``valid_acc``, as scikit-learn's
    validation score is (skorch's regressor has no score: ``valid_r2`` is
    added to its callbacks)."""
    overrides = {"print_log": SklearnPrintLog(),
                 "train_loss": BatchLossScoring("train_loss", on_train=True),
                 "valid_loss": BatchLossScoring("valid_loss")}
    if not config.regression:
        overrides["valid_acc"] = validation_accuracy()
    return overrides


def _copy_callback(item):
    """A copy of a user's callback (or ``(name, callback)`` pair) to train, so
    that the parameter is never mutated; one that cannot be copied, such as
    ``TensorBoard`` with its open ``SummaryWriter``, is used as it is."""
    try:
        return copy.deepcopy(item)
    except (TypeError, copy.Error):
        return item


def _callbacks(config):
    """skorch ``callbacks`` and ``callbacks__<name>`` parameters of the net.

    Beside skorch's defaults run thread tuning, the progress bar, the user's
    callbacks (copies: the parameter is never mutated), then scikit-learn's
    semantics, last so that every other callback sees the epoch at which they
    stop training, and the Ctrl-C watch. A user callback named after one of
    skorch's defaults (``("print_log", PrintLog())``) or of sknn's own
    (``"thread_tuner"``, ``"progress_bar"``, ``"sklearn_stopping"``...) takes
    its place, and ``(name, None)`` removes it, as skorch's
    ``callbacks__<name>=None`` does.
    """
    c = config
    defaults = _default_overrides(c)
    first = {"thread_tuner": ThreadTuner()}
    if c.regression:
        first["valid_r2"] = validation_r2()
    if c.validates:
        first["sklearn_best_weights"] = RestoreBestWeights(c.score_key)
    if c.progress_bar:
        first["progress_bar"] = EpochProgressBar()
    last = {}
    if c.stochastic:
        if c.solver == "sgd" and c.learning_rate == "invscaling":
            last["sklearn_invscaling"] = InvScalingLR(c.learning_rate_init,
                                                      c.power_t)
        last["sklearn_stopping"] = NoImprovementStopping(
            monitor=c.score_key if c.validates else "train_loss",
            tol=c.tol, n_iter_no_change=c.n_iter_no_change,
            adaptive=c.solver == "sgd" and c.learning_rate == "adaptive")
    add_net_callbacks(first, last)  # sklearn.callback: epochs as tasks
    last["non_finite_stop"] = NonFiniteStop()
    last["ctrl_c"] = CtrlCWatch()
    user = []
    for item in map(_copy_callback, c.callbacks or []):
        name = item[0] if isinstance(item, tuple) else None
        for named in (defaults, first, last):
            if name in named:
                named[name] = item[1]
                break
        else:
            user.append(item)
    return {"callbacks": [*first.items(), *isolate_checkpoints(user), *last.items()],
            **{f"callbacks__{name}": cb for name, cb in defaults.items()}}


# ----------------------------------------------------- checks before building
def _memory_bytes(device):
    """The memory of ``device`` (physical RAM for the CPU), or None if
    unknown."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return torch.cuda.get_device_properties(device.index or 0).total_memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError, RuntimeError):
        return None


def _in_units(n_bytes):
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:,.1f} GiB"
    return f"{n_bytes / 2**20:,.1f} MiB"


def check_network_size(config):
    """Refuse a network that cannot be trained on the device, before any of
    it is allocated: its parameters, counted by the estimator's hook or on a
    network built on torch's 'meta' device (shapes without storage), against
    the device's memory."""
    c = config
    name = c.estimator_name
    n_params = None
    if c.count_parameters is not None:
        n_params = c.count_parameters(c.n_features, c.n_outputs)
    if n_params is None:
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                module = c.build_module(c.n_features, c.n_outputs)
        except (RuntimeError, OverflowError, TypeError) as exc:
            raise ValueError(
                f"{name} cannot build a network with these layer sizes "
                f"({str(exc).splitlines()[0]}). Use smaller layers.") from None
        n_params = sum(p.numel() for p in module.parameters())
    # float32 weights, their gradients and an optimizer's two moment buffers
    needed = 16 * n_params
    memory = _memory_bytes(config.device)
    if memory is not None and needed > memory:
        raise ValueError(
            f"{name} with these layer sizes has {n_params:,} parameters: "
            f"training them needs about {_in_units(needed)}, more than the "
            f"{_in_units(memory)} of memory of the "
            f"{torch.device(config.device).type} device. Use smaller layers.")


# ---------------------------------------------------------------- the net
def build_net(config, batch_size=1, l2_coef=0.0, precision=(None, None)):
    """A new, initialized :class:`SknnNet` for ``config``."""
    c = config
    criterion, nonlinearity = OUTPUTS[c.output_kind]
    if c.regression:  # scikit-learn reports the squared error per output
        kind_params = {"loss_scale": (1.0 / c.n_outputs
                                      if c.output_kind == "continuous" else 1.0)}
    else:
        kind_params = {"classes": np.arange(max(c.n_outputs, 2))}
    net = net_class(c.output_kind)(
        c.build_module(c.n_features, c.n_outputs),
        criterion=criterion,
        criterion__reduction="none",
        target_kind=c.output_kind,
        predict_nonlinearity=nonlinearity,
        **kind_params,
        max_epochs=c.max_iter,
        batch_size=batch_size,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        iterator_train__shuffle=c.shuffle,
        iterator_train__merge_single=bool(c.batch_norm),
        iterator_valid__batch_size=PREDICT_BATCH_SIZE,
        train_split=None,
        device=c.device,
        verbose=c.verbose,
        autocast_dtype=precision[0],
        grad_scaler=precision[1],
        **_callbacks(c),
        **optimizer_policy(c, l2_coef),
    )
    return net.initialize()


def _keep_training(net, config, batch_size, l2_coef, precision):
    """Carry the net into a further fit: ``partial_fit`` keeps the optimizer
    and its state; a warm-started ``fit`` gets a new optimizer from the
    current parameters, as scikit-learn's does."""
    net.batch_size = batch_size
    net.autocast_dtype, net.grad_scaler = precision
    net.verbose = config.verbose
    # sknn's callbacks keep their state (best score, counters, t) and take
    # the estimator's current parameters (tol, n_iter_no_change...)
    fitted = dict(net.callbacks_)
    for name, fresh in _callbacks(config)["callbacks"]:
        if name in fitted and type(fitted[name]) is type(fresh) and (
                name.startswith("sklearn_") or name == "progress_bar"):
            fitted[name].set_params(**fresh.get_params())
    if config.incremental:
        for group in net.optimizer_.param_groups:
            if group.get("weight_decay"):
                group["weight_decay"] = l2_coef
        return
    policy = optimizer_policy(config, l2_coef)
    for key in [k for k in vars(net) if k.startswith("optimizer__")]:
        if key not in policy:  # another solver's setting
            delattr(net, key)
    for key, value in policy.items():
        setattr(net, key, value)
    net.initialize_optimizer()


def _set_fit_params(net, **params):
    """Set skorch parameters read afresh at each fit, as attributes, as
    ``set_params`` stores them (on an initialized net, skorch's ``set_params``
    re-initializes components and refuses ``iterator_train__*``)."""
    for key, value in params.items():
        setattr(net, key, value)


# ------------------------------------------------------------------- scopes
#: torch's global RNG is one per process: a seeded section holds this lock, so
#: that fits in threads (joblib's threading backend, Dask worker threads) never
#: draw from each other's seeded streams
RNG_LOCK = threading.RLock()


@contextmanager
def torch_rng(seed, device):
    """Seed torch's global RNG for a fit, then put the caller's RNG state back,
    so that fitting leaves the global state as it was. Holds :data:`RNG_LOCK`
    meanwhile."""
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with RNG_LOCK, torch.random.fork_rng(devices=cuda):
        # seed only the generators in use: torch.manual_seed() also queues a
        # lazy CUDA seeding that records a stack trace on every call
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield


def _draws_while_training(module, config):
    """Whether training draws from torch's global RNG: dropout masks, or a
    batch transform (augmentation)."""
    return config.batch_transform is not None or any(
        isinstance(layer, torch.nn.modules.dropout._DropoutNd) and layer.p > 0
        for layer in module.modules())


# ---------------------------------------------------------------- the call
def _datasets(config, X, y, weight):
    """The training set and, with early stopping, scikit-learn's validation
    split (stratified for a single-output classifier, as scikit-learn's), as device
    tensors."""
    device = config.device
    data = TensorDataset(
        config.input_tensor(X, device), as_target_tensor(y, device),
        None if weight is None else torch.from_numpy(weight).to(device))
    if not config.validates:
        return data, None
    stratify = None
    if config.n_outputs == 1 and not config.regression:
        stratify = np.asarray(y).reshape(-1, 1) > 0.5
    train_idx, valid_idx = train_test_split(
        np.arange(len(data)), random_state=config.split_random_state,
        test_size=config.validation_fraction, stratify=stratify)
    if len(valid_idx) < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset.")
    return (data.subset(torch.from_numpy(train_idx).to(device)),
            data.subset(torch.from_numpy(valid_idx).to(device)))


def fit(config, X, y, weight, net=None):
    """Train a net on validated data.

    Parameters
    ----------
    config : FitConfig
    X : ndarray of shape (n_samples, n_features)
        Validated float input.
    y : ndarray
        Encoded targets (int64 class indices or a float32 indicator matrix).
    weight : ndarray of shape (n_samples,) or None
        Combined sample and class weights; None when all are equal.
    net : SknnNet or None
        The net to train further (``partial_fit``, a warm start); None builds
        a new one.

    Returns
    -------
    result : FitResult
    """
    c = config
    precision = precision_policy(c.precision, c.device, c.solver)
    check_callbacks(c.callbacks)
    train, valid = _datasets(c, X, y, weight)
    warnings = []
    if c.stochastic:
        batch_size, warning = resolve_batch_size(c.batch_size, len(train))
        warnings += [warning] if warning else []
    else:
        batch_size = len(train)
    if (train.weight is not None and batch_size >= len(train)
            and not float(train.weight.sum())):
        raise ValueError(
            "Sample weights sum to zero over the training batch, so the "
            "weighted mean loss is undefined. Give the samples weights with a "
            "non-zero sum.")
    if c.batch_norm and len(train) < 2:
        raise ValueError(
            "batch_norm=True needs at least 2 training samples (a batch of one "
            f"sample cannot be normalized); got {len(train)}.")
    l2_coef = l2_coefficient(c.alpha, batch_size, weight)
    if net is None:
        check_network_size(c)
    epochs = c.max_iter if c.stochastic and not c.incremental else 1
    with ExitStack() as seeded:
        seeded.enter_context(torch_rng(c.seed, c.device))
        if net is None:
            net = build_net(c, batch_size, l2_coef, precision)
        else:
            _keep_training(net, c, batch_size, l2_coef, precision)
        if not _draws_while_training(net.module_, c):
            # the seeded stream built the weights; training draws nothing from
            # it (batches come from their own generator), so other threads'
            # fits may seed theirs while this one trains
            seeded.close()
        _set_fit_params(
            net, train_split=None if valid is None else predefined_split(valid),
            iterator_train__generator=torch.Generator().manual_seed(c.seed),
            iterator_train__transform=c.batch_transform,
            # one batch of all the data: a permutation would change only the
            # order of its sums (and so the float rounding from call to call)
            iterator_train__shuffle=c.shuffle and batch_size < len(train))
        named = dict(net.callbacks_)
        bar = named.get("progress_bar")
        if isinstance(bar, EpochProgressBar):
            bar.total = epochs
        watch = named.get("ctrl_c")
        cpu = torch.device(c.device).type == "cpu"
        work = (c.batch_work(batch_size, net.module_)
                if cpu and c.batch_work is not None else None)
        try:
            with fit_threads(work):
                net.partial_fit(train, None, epochs=epochs)
        finally:
            # the fitted net keeps neither the data nor the RNG
            _set_fit_params(net, train_split=None, iterator_train__generator=None)
            if isinstance(watch, CtrlCWatch):
                watch.release()
    interrupted = isinstance(watch, CtrlCWatch) and watch.pressed_
    attributes, end_warnings = fitted_attributes(net, c, interrupted)
    return FitResult(net, attributes, warnings + end_warnings)


__all__ = ["MAX_SEED", "RNG_LOCK", "FitConfig", "FitResult", "SknnNet", "build_net",
           "fit", "fitted_attributes", "torch_rng"]
