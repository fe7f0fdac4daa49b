"""Training: the skorch net sknn estimators keep as ``net_``, and the one call
that configures and runs it.

:func:`fit` is the seam between an estimator (scikit-learn's contract:
parameters, validation, targets, fitted attributes) and skorch. It owns
everything about training:

- the net's configuration, through skorch's public parameters: the data as a
  torch ``Dataset`` (X), ``train_split=predefined_split(valid)``, the slicing
  iterators and their generator (``iterator_train``, ``iterator_valid``),
  ``classes``, the optimizer with scikit-learn's L2 term as
  ``optimizer__param_groups``, and skorch's default callbacks (``train_loss``,
  ``valid_loss``, ``valid_acc`` and their ``*_best`` flags) beside the
  callbacks that give scikit-learn's semantics;
- the scopes of a fit: torch's RNG (seeded, then restored), CPU threads,
  mixed precision, and Ctrl-C;
- the translation of the net's history into scikit-learn's fitted attributes.

:class:`SknnNet` departs from skorch's ``NeuralNetClassifier`` only where
skorch's parameters cannot say the same thing; each override says why.
"""

import copy
import os
import signal
import threading
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.utils import TeeGenerator

from sknn._callbacks import (
    InvScalingLR,
    NoImprovementStopping,
    SklearnPrintLog,
    validation_accuracy,
)
from sknn._compat import warn_external
from sknn._data import BatchIterator, TensorDataset, as_target_tensor
from sknn._modules import L2_PATTERNS, l2_weights
from sknn._parallel import isolate_checkpoints, resolve_device
from sknn._progress import EpochProgressBar
from sknn._threads import ThreadTuner, fit_threads

_MAX_SEED = np.iinfo(np.int32).max

#: rows per forward pass when predicting or validating
PREDICT_BATCH_SIZE = 8192


# ------------------------------------------------------------------ the net
def _softmax(logits):
    return torch.softmax(logits, dim=1)


def _binary_proba(logits):
    # one sigmoid output -> the two columns of predict_proba
    p = torch.sigmoid(logits).reshape(-1, 1)
    return torch.cat([1 - p, p], dim=1)


#: net target kind -> (criterion, predict_nonlinearity)
KINDS = {
    "multiclass": (torch.nn.CrossEntropyLoss, _softmax),
    "binary": (torch.nn.BCEWithLogitsLoss, _binary_proba),
    "multilabel": (torch.nn.BCEWithLogitsLoss, torch.sigmoid),
}


class SknnNet(NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with scikit-learn's loss, a slicing data
    path and mixed precision.

    Extra parameters
    ----------------
    target_kind : {'multiclass', 'binary', 'multilabel'}
        Softmax cross-entropy on class indices, one sigmoid output, or one
        sigmoid per label (binary cross-entropy summed over outputs: sklearn's
        log-loss).
    penalty_in_loss : float
        For L-BFGS, which takes no parameter groups: the L2 coefficient c added
        to the loss as ``0.5 * c * ||W||^2``. Other optimizers get the penalty
        as weight decay on the L2 parameter group.
    autocast_dtype : torch.dtype or None
        Mixed precision for the forward pass and the loss (weights stay
        float32); None trains in float32.
    grad_scaler : torch.amp.GradScaler or None
        Loss scaling for float16 training.
    """

    def __init__(self, module, *args, target_kind="multiclass",
                 penalty_in_loss=0.0, autocast_dtype=None, grad_scaler=None,
                 **kwargs):
        super().__init__(module, *args, **kwargs)
        self.target_kind = target_kind
        self.penalty_in_loss = penalty_in_loss
        self.autocast_dtype = autocast_dtype
        self.grad_scaler = grad_scaler

    # ------------------------------------------------------------ one batch
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(torch.device(self.device).type,
                              dtype=self.autocast_dtype)

    def infer(self, x, **fit_params):
        # weighted batches carry their sample weights beside X, skorch's
        # documented form; skorch would pass both to the module as keywords,
        # and sknn's modules take X alone. Training batches are tensors on the
        # device already: skorch's conversion is for anything else
        if isinstance(x, Mapping):
            x = x["X"]
        if not fit_params and _on_device(x, getattr(self, "_device", None)):
            return self.module_(x)
        return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        # scikit-learn's loss: the (sample-weighted) mean of per-sample losses,
        # summed over the outputs of a sigmoid per label
        per_sample = self.criterion_(y_pred, y_true)
        if per_sample.dim() > 1:
            per_sample = per_sample.sum(dim=1)
        weight = X.get("sample_weight") if isinstance(X, Mapping) else None
        if weight is None:
            loss = per_sample.mean()
        else:
            loss = (per_sample * weight).sum() / weight.sum()
        if training and self.penalty_in_loss:
            loss = loss + 0.5 * self.penalty_in_loss * _squared_norm(
                l2_weights(self.module_))
        return loss

    def train_step_single(self, batch, **fit_params):
        # skorch's, within autocast and with the loss scaled for float16; the
        # modules' modes are set once per epoch, and here again only if a
        # callback switched them (skorch sets them on every batch)
        if not self.module_.training:
            self._set_training(True)
        Xi, yi = unpack_data(batch)
        with self._autocast():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaled = loss if self.grad_scaler is None else self.grad_scaler.scale(loss)
        scaled.backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        if self.module_.training:
            self._set_training(False)
        Xi, yi = unpack_data(batch)
        with torch.no_grad(), self._autocast():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        # skorch's train_step runs the step as an optimizer closure and
        # notifies on_grad_computed with a generator over all parameters on
        # every batch. L-BFGS needs the closure; other optimizers call it once,
        # so it is skipped (its bookkeeping costs as much as the forward pass
        # of a small net), on_grad_computed is notified only when a callback
        # listens, and a float16 gradient scaler steps the optimizer
        if self.optimizer is torch.optim.LBFGS:
            return super().train_step(batch, **fit_params)
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        scaler = self.grad_scaler
        if self._grad_listeners:
            if scaler is not None:
                scaler.unscale_(self.optimizer_)
            self.notify("on_grad_computed",
                        named_parameters=TeeGenerator(self.get_all_learnable_params()),
                        batch=batch, training=True)
        if scaler is None:
            self.optimizer_.step()
        else:
            scaler.step(self.optimizer_)
            scaler.update()
        return step

    def get_train_step_accumulator(self):
        if self.optimizer is torch.optim.LBFGS:
            # L-BFGS evaluates the loss many times per step: report the last
            return _LastStepAccumulator()
        return super().get_train_step_accumulator()

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        # epochs of this fit (LoadInitState may load an earlier history)
        self.epochs_run_ = 0
        self._device = torch.device(self.device)
        self._grad_listeners = any(
            getattr(type(cb), "on_grad_computed", None) not in (
                None, Callback.on_grad_computed)
            for _, cb in self.callbacks_)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        self.epochs_run_ += 1

    # ----------------------------------------------------------- one epoch
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop reads every batch loss with .item(), which waits for
        # the GPU on every batch. Here, off the CPU, batch losses stay on the
        # device and are written into the batch records once per epoch, before
        # the scoring callbacks read them; on the CPU, where .item() costs
        # nothing, each is recorded as it comes. The training accuracy is
        # counted on the device too, one 0-d count per batch. Records:
        # <prefix>_loss per batch (with the L2 term, as scikit-learn's
        # loss_curve_), <prefix>_batch_size, <prefix>_batch_count, and
        # train_acc and train_samples per epoch.
        if iterator is None:
            return
        if self.module_.training != training:
            self._set_training(training)
        batches = self.history[-1]["batches"]
        first = len(batches)
        deferred = self._defer_batch_losses()
        losses, corrects, sizes = [], [], []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            loss = step["loss"].detach()
            if deferred:
                losses.append(loss)
            else:
                self.history.record_batch(prefix + "_loss", loss.item())
            if training:
                # a 0-d count per batch: holding each batch's outputs until the
                # epoch ends fragments the heap (measured: +0.4 MB per batch)
                corrects.append(self._correct(step["y_pred"].detach(), batch))
            sizes.append(len(batch[1]))
            self.history.record_batch(prefix + "_batch_size", sizes[-1])
            self.notify("on_batch_end", batch=batch, training=training, **step)
            if self._ctrl_c_pressed():
                # the Ctrl-C's KeyboardInterrupt was caught on its way (in a
                # __del__, a callback's except clause...): stop here instead
                raise KeyboardInterrupt
        rows = batches[first:first + len(sizes)]
        penalty = self.l2_penalty() if training else 0.0
        if deferred and losses:
            for row, value in zip(rows, torch.stack(losses).tolist()):
                row[prefix + "_loss"] = value + penalty
        elif penalty:
            for row in rows:
                row[prefix + "_loss"] += penalty
        if training:
            weight = getattr(iterator.dataset, "weight", None)
            total = sum(sizes) if weight is None else float(weight.sum())
            # weights summing to zero leave the weighted accuracy undefined
            self.history.record("train_acc",
                                float(torch.stack(corrects).sum()) / total
                                if total else float("nan"))
            self.history.record("train_samples", sum(sizes))
        self.history.record(prefix + "_batch_count", len(sizes))

    def _ctrl_c_pressed(self):
        pressed = self.__dict__.get("ctrl_c_pressed_")
        return pressed is not None and pressed()

    def _defer_batch_losses(self):
        """Whether batch losses wait on the device until the epoch ends."""
        return torch.device(self.device).type != "cpu"

    def _correct(self, y_pred, batch):
        """Correct predictions in a batch: a count, or the sum of the weights
        of the correct samples (a 0-d tensor, left on the device)."""
        X, y = batch
        if self.target_kind == "multiclass":
            correct = y_pred.argmax(dim=1) == y
        else:
            correct = ((y_pred > 0) == (y > 0.5)).all(dim=1)
        if isinstance(X, Mapping):
            return (correct * X["sample_weight"]).sum()
        return correct.sum()

    def l2_penalty(self):
        """The L2 term the optimizer's weight decay stands for,
        ``0.5 * c * ||W||^2``, as a float (scikit-learn's loss includes it);
        0 for L-BFGS, whose loss carries the term itself."""
        coef = max(g.get("weight_decay", 0.0) for g in self.optimizer_.param_groups)
        if not coef or self.penalty_in_loss:
            return 0.0
        with torch.no_grad():
            return 0.5 * coef * float(_squared_norm(l2_weights(self.module_)))

    # -------------------------------------------------------------- predict
    def predict(self, X):
        # NeuralNetClassifier.predict is the argmax of predict_proba; with one
        # sigmoid per label, each label is predicted on its own
        if self.target_kind == "multilabel":
            return (self.predict_proba(X) > 0.5).astype(np.int64)
        return super().predict(X)

    def forward_logits(self, X):
        """The module's outputs (logits) for a device tensor X, in batches of
        :data:`PREDICT_BATCH_SIZE` rows without autograd: the estimators'
        own predict path."""
        module = self.module_
        if module.training:
            module.eval()
        with torch.inference_mode():
            if len(X) <= PREDICT_BATCH_SIZE:
                return module(X)
            return torch.cat([module(X[i:i + PREDICT_BATCH_SIZE])
                              for i in range(0, len(X), PREDICT_BATCH_SIZE)])

    def forward_outputs(self, X):
        """``predict_proba`` as a float32 tensor for a device tensor X."""
        logits = self.forward_logits(X)
        with torch.inference_mode():
            return self.predict_nonlinearity(logits)


def output_probabilities(logits, kind, log=False):
    """``predict_proba`` (or, with ``log``, ``predict_log_proba``) in float64
    from the network's logits, as scikit-learn computes its probabilities in
    float64: no exact 0 or 1 where the float64 value is not.

    The logarithms are ``log(predict_proba)``, as scikit-learn's (so that the
    two agree, ties included), except where a probability underflows to 0:
    there, log-softmax or log-sigmoid of the logits gives the finite value
    that scikit-learn's ``-inf`` stands for.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_outputs)
    kind : {'multiclass', 'binary', 'multilabel'}
        The net's target kind: softmax over the outputs, one sigmoid output
        answered as two columns, or a sigmoid per label.
    log : bool, default=False
    """
    z = logits.detach().cpu().numpy().astype(np.float64)
    if kind == "multiclass":
        z -= z.max(axis=1, keepdims=True)
        proba = np.exp(z)
        proba /= proba.sum(axis=1, keepdims=True)
    else:
        if kind == "binary":
            z = np.hstack([-z, z])
        proba = expit(z)
    if not log:
        return proba
    underflow = proba == 0
    with np.errstate(divide="ignore"):
        log_proba = np.log(proba, out=proba)
    if underflow.any():
        if kind == "multiclass":  # z is shifted: the log-sum-exp is finite
            exact = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        else:  # log(sigmoid(z)) = -log(1 + exp(-z))
            exact = -np.logaddexp(0.0, -z)
        log_proba[underflow] = exact[underflow]
    return log_proba


def _on_device(x, device):
    """Whether ``x`` is a tensor on ``device`` ('cuda' meaning any GPU index)."""
    return (device is not None and isinstance(x, torch.Tensor)
            and x.device.type == device.type
            and (device.index is None or x.device.index == device.index))


class _LastStepAccumulator:
    """Keeps the last of the steps an optimizer's closure produced."""

    def store_step(self, step):
        self.step = step

    def get_step(self):
        return self.step


def _squared_norm(weights):
    return sum(w.pow(2).sum() for w in weights)


class RestoreBestWeights(Callback):
    """scikit-learn's early stopping keeps the weights of the epoch with the
    best validation accuracy: copy them whenever ``valid_acc_best`` is set and
    put them back when training ends (before any user callback saves the
    final weights)."""

    def initialize(self):
        self.best_state_ = None
        return self

    def on_epoch_end(self, net, **kwargs):
        if net.history[-1].get("valid_acc_best"):
            self.best_state_ = {k: v.detach().clone()
                                for k, v in net.module_.state_dict().items()}

    def on_train_end(self, net, **kwargs):
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
        # the copy served its purpose: the module holds those weights now
        self.best_state_ = None


def slim_copy(net):
    """A shallow copy of ``net`` to pickle: without the optimizer's state
    (re-created empty on load, :func:`restore_slim`), without the per-batch
    history records, and with the module once (skorch pickles its ``module``
    parameter, the same instance as ``module_``, a second time)."""
    from skorch.history import History

    slim = type(net).__new__(type(net))
    slim.__dict__.update(net.__dict__)
    slim.__dict__["optimizer_"] = None
    if slim.__dict__.get("module") is net.module_:
        slim.__dict__["module"] = None
    slim.__dict__["history_"] = History(
        {key: value for key, value in row.items() if key != "batches"}
        for row in net.history)
    return slim


def restore_slim(net):
    """Undo :func:`slim_copy` on a net just unpickled."""
    if net.__dict__.get("module") is None:
        net.__dict__["module"] = net.module_
    if net.optimizer_ is None:
        net.initialize_optimizer()


# ----------------------------------------------------------------- policies
def _fused_ok(device):
    # fused Adam/SGD kernels exist for CPU and CUDA from torch 2.4 on
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4) and torch.device(device).type in ("cpu", "cuda")


def optimizer_policy(est, l2_coef):
    """The solver as skorch net parameters: the optimizer class, its settings,
    and scikit-learn's L2 term.

    scikit-learn adds ``0.5 * alpha * ||W||^2 / (sum of the batch's sample
    weights)`` to the mean batch loss; its gradient is weight decay
    ``l2_coef = alpha / batch_weight`` on the weights :data:`L2_PATTERNS`
    select, an optimizer parameter group. L-BFGS takes no parameter groups,
    so the term goes into its loss (``penalty_in_loss``).
    """
    fused = {"optimizer__fused": True} if _fused_ok(est.device_) else {}
    groups = [(pattern, {"weight_decay": l2_coef}) for pattern in L2_PATTERNS]
    if est.solver == "adam":
        return dict(optimizer=torch.optim.Adam, lr=est.learning_rate_init,
                    optimizer__betas=(est.beta_1, est.beta_2),
                    optimizer__eps=est.epsilon, optimizer__param_groups=groups,
                    penalty_in_loss=0.0, **fused)
    if est.solver == "sgd":
        return dict(optimizer=torch.optim.SGD, lr=est.learning_rate_init,
                    optimizer__momentum=est.momentum,
                    optimizer__nesterov=bool(est.nesterovs_momentum
                                             and est.momentum > 0),
                    optimizer__param_groups=groups, penalty_in_loss=0.0, **fused)
    return dict(optimizer=torch.optim.LBFGS, lr=1.0,
                optimizer__max_iter=est.max_iter, optimizer__max_eval=est.max_fun,
                optimizer__tolerance_grad=est.tol, optimizer__tolerance_change=0.0,
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


def _default_overrides():
    """The skorch default callbacks sknn replaces: sklearn-worded printing in
    place of skorch's ``print_log`` table, and a sample-weighted ``valid_acc``,
    as scikit-learn's validation score is."""
    return {"print_log": SklearnPrintLog(), "valid_acc": validation_accuracy()}


def _copy_callback(item):
    """A copy of a user's callback (or ``(name, callback)`` pair) to train, so
    that the parameter is never mutated; one that cannot be copied, such as
    ``TensorBoard`` with its open ``SummaryWriter``, is used as it is."""
    try:
        return copy.deepcopy(item)
    except (TypeError, copy.Error):
        return item


def _callbacks(est):
    """skorch ``callbacks`` and ``callbacks__<name>`` parameters of the net.

    Beside skorch's defaults run thread tuning, the progress bar, the user's
    callbacks (copies: the parameter is never mutated), then scikit-learn's
    semantics, last so that every other callback sees the epoch at which they
    stop training. A user callback named after one of skorch's defaults
    (``("print_log", PrintLog())``) or of sknn's own (``"thread_tuner"``,
    ``"progress_bar"``, ``"sklearn_stopping"``...) takes its place, and
    ``(name, None)`` removes it, as skorch's ``callbacks__<name>=None`` does.
    """
    defaults = _default_overrides()
    first = {"thread_tuner": ThreadTuner()}
    if early_stopping(est):
        first["sklearn_best_weights"] = RestoreBestWeights()
    if est.progress_bar:
        first["progress_bar"] = EpochProgressBar()
    last = {}
    if est.solver != "lbfgs":
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            last["sklearn_invscaling"] = InvScalingLR(est.learning_rate_init,
                                                      est.power_t)
        last["sklearn_stopping"] = NoImprovementStopping(
            monitor="valid_acc" if early_stopping(est) else "train_loss",
            tol=est.tol, n_iter_no_change=est.n_iter_no_change,
            adaptive=est.solver == "sgd" and est.learning_rate == "adaptive")
    user = []
    for item in map(_copy_callback, est.callbacks or []):
        name = item[0] if isinstance(item, tuple) else None
        for named in (defaults, first, last):
            if name in named:
                named[name] = item[1]
                break
        else:
            user.append(item)
    return {"callbacks": [*first.items(), *isolate_checkpoints(user), *last.items()],
            **{f"callbacks__{name}": cb for name, cb in defaults.items()}}


def new_net(est, n_features, batch_size, l2_coef, precision):
    encoder = est.target_encoder_
    kind = {"onehot": "multiclass"}.get(encoder.kind_, encoder.kind_)
    criterion, nonlinearity = KINDS[kind]
    net = SknnNet(
        est._build_module(n_features, encoder.n_outputs_),
        criterion=criterion,
        criterion__reduction="none",
        target_kind=kind,
        predict_nonlinearity=nonlinearity,
        classes=np.arange(max(encoder.n_outputs_, 2)),
        max_epochs=est.max_iter,
        batch_size=batch_size,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        iterator_train__shuffle=est.shuffle,
        iterator_train__merge_single=bool(getattr(est, "batch_norm", False)),
        iterator_valid__batch_size=PREDICT_BATCH_SIZE,
        train_split=None,
        device=est.device_,
        verbose=est.verbose,
        autocast_dtype=precision[0],
        grad_scaler=precision[1],
        **_callbacks(est),
        **optimizer_policy(est, l2_coef),
    )
    return net.initialize()


def _keep_training(net, est, batch_size, l2_coef, precision, incremental):
    """Carry the net into a further fit: ``partial_fit`` keeps the optimizer
    and its state; a warm-started ``fit`` gets a new optimizer from the
    current parameters, as scikit-learn's does."""
    net.batch_size = batch_size
    net.autocast_dtype, net.grad_scaler = precision
    net.verbose = est.verbose
    # sknn's callbacks keep their state (best score, counters, t) and take
    # the estimator's current parameters (tol, n_iter_no_change...)
    fitted = dict(net.callbacks_)
    for name, fresh in _callbacks(est)["callbacks"]:
        if name in fitted and type(fitted[name]) is type(fresh) and (
                name.startswith("sklearn_") or name == "progress_bar"):
            fitted[name].set_params(**fresh.get_params())
    if incremental:
        for group in net.optimizer_.param_groups:
            if group.get("weight_decay"):
                group["weight_decay"] = l2_coef
        return
    policy = optimizer_policy(est, l2_coef)
    for key in [k for k in vars(net) if k.startswith("optimizer__")]:
        if key not in policy:  # another solver's setting
            delattr(net, key)
    for key, value in policy.items():
        setattr(net, key, value)
    net.initialize_optimizer()


# ------------------------------------------------------------------- scopes
@contextmanager
def torch_rng(seed, device):
    """Seed torch's global RNG for a fit, then put the caller's RNG state back,
    so that fitting leaves the global state as it was."""
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


@contextmanager
def ctrl_c_watch():
    """Tell a real Ctrl-C from a callback's planned stop.

    Both reach skorch as ``KeyboardInterrupt``, which ends training normally
    (skorch's ``EarlyStopping`` stops that way). While the fit runs, SIGINT
    first notes that the user pressed Ctrl-C, then does what it did before.

    Yields
    ------
    pressed : callable
        Returns True once Ctrl-C has been pressed during the fit.
    """
    pressed = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if callable(previous):
            def _note(signum, frame):
                pressed.append(signum)
                previous(signum, frame)

            signal.signal(signal.SIGINT, _note)
        else:  # ignored or default: nothing to tell apart
            previous = None
    try:
        yield lambda: bool(pressed)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- the call
def early_stopping(est):
    """Whether this fit holds out a validation set: scikit-learn ignores
    ``early_stopping`` for L-BFGS."""
    return bool(est.early_stopping) and est.solver != "lbfgs"


def _datasets(est, X, y, weight, random_state):
    """The training set and, with early stopping, scikit-learn's validation
    split (stratified for a single output, as scikit-learn's), as device
    tensors."""
    device = est.device_
    data = TensorDataset(
        est._input_tensor(X, device), as_target_tensor(y, device),
        None if weight is None else torch.from_numpy(weight).to(device))
    if not early_stopping(est):
        return data, None
    stratify = None
    if est.target_encoder_.n_outputs_ == 1:
        stratify = np.asarray(y).reshape(-1, 1) > 0.5
    train_idx, valid_idx = train_test_split(
        np.arange(len(data)), random_state=random_state,
        test_size=est.validation_fraction, stratify=stratify)
    if len(valid_idx) < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset.")
    return (data.subset(torch.from_numpy(train_idx).to(device)),
            data.subset(torch.from_numpy(valid_idx).to(device)))


def _set_fit_params(net, **params):
    """Set skorch parameters that are read afresh at each fit.

    They are stored as attributes, as ``set_params`` itself stores them: on
    an initialized net, skorch's ``set_params`` goes on to re-initialize
    components and refuses ``iterator_train__*`` parameters.
    """
    for key, value in params.items():
        setattr(net, key, value)


def check_callbacks(callbacks):
    """Refuse ``callbacks`` items skorch cannot take, before anything is
    built: each must be a skorch ``Callback`` (an instance or a class), or a
    ``(name, Callback or None)`` pair."""
    for i, item in enumerate(callbacks or []):
        callback = item
        if isinstance(item, tuple):
            if len(item) != 2 or not isinstance(item[0], str):
                raise ValueError(
                    f"Each item of 'callbacks' must be a skorch Callback or a "
                    f"(name, Callback) pair with a str name; item {i} is "
                    f"{item!r}.")
            callback = item[1]
            if callback is None:  # removes the callback of that name
                continue
        if not (isinstance(callback, Callback) or (
                isinstance(callback, type) and issubclass(callback, Callback))):
            raise ValueError(
                f"Each item of 'callbacks' must be a skorch Callback (from "
                f"skorch.callbacks, or a subclass of skorch.callbacks.Callback) "
                f"or a (name, Callback) pair; item {i} is {callback!r} of type "
                f"{type(callback).__name__}.")


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


def check_network_size(est, n_features, n_outputs, device):
    """Refuse a network that cannot be trained on ``device``, before any of
    it is allocated: it is built on torch's 'meta' device (shapes without
    storage) and its parameters counted against the device's memory."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            module = est._build_module(n_features, n_outputs)
    except (RuntimeError, OverflowError, TypeError) as exc:
        raise ValueError(
            f"{type(est).__name__} cannot build a network with these layer "
            f"sizes ({str(exc).splitlines()[0]}). Use smaller layers.") from None
    n_params = sum(p.numel() for p in module.parameters())
    # float32 weights, their gradients and an optimizer's two moment buffers
    needed = 16 * n_params
    memory = _memory_bytes(device)
    if memory is not None and needed > memory:
        raise ValueError(
            f"{type(est).__name__} with these layer sizes has {n_params:,} "
            f"parameters: training them needs about {_in_units(needed)}, more "
            f"than the {_in_units(memory)} of memory of the "
            f"{torch.device(device).type} device. Use smaller layers.")


def _in_units(n_bytes):
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:,.1f} GiB"
    return f"{n_bytes / 2**20:,.1f} MiB"


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


def fit(est, X, y, weight, *, incremental, reset):
    """Train ``est.net_`` on validated data, then set the fitted attributes.

    Parameters
    ----------
    est : BaseTorchClassifier
        The estimator; its ``target_encoder_`` is fitted. Its hooks build the
        module (``_build_module``), the input tensor (``_input_tensor``) and
        the batch transform (``_batch_transform``).
    X : ndarray of shape (n_samples, n_features)
        Validated float input.
    y : ndarray
        Targets encoded by ``est.target_encoder_``.
    weight : ndarray of shape (n_samples,) or None
        Combined sample and class weights; None when all are equal.
    incremental : bool
        One epoch, keeping the optimizer (``partial_fit``).
    reset : bool
        Build a new net (a first fit, or a fit without ``warm_start``).
    """
    random_state = check_random_state(est.random_state)
    seed = int(random_state.randint(_MAX_SEED))
    if reset or not hasattr(est, "device_"):
        est.device_ = resolve_device(est.device)
    precision = precision_policy(est.precision, est.device_, est.solver)
    train, valid = _datasets(est, X, y, weight, random_state)
    stochastic = est.solver != "lbfgs"
    batch_size = est._batch_size(len(train)) if stochastic else len(train)
    if (train.weight is not None and batch_size >= len(train)
            and not float(train.weight.sum())):
        raise ValueError(
            "Sample weights sum to zero over the training batch, so the "
            "weighted mean loss is undefined. Give the samples weights with a "
            "non-zero sum.")
    if getattr(est, "batch_norm", False) and len(train) < 2:
        raise ValueError(
            "batch_norm=True needs at least 2 training samples (a batch of one "
            f"sample cannot be normalized); got {len(train)}.")
    l2_coef = l2_coefficient(est.alpha, batch_size, weight)
    check_callbacks(est.callbacks)
    if reset:
        check_network_size(est, X.shape[1], est.target_encoder_.n_outputs_,
                           est.device_)
    epochs = est.max_iter if stochastic and not incremental else 1
    with torch_rng(seed, est.device_):
        if reset:
            est.net_ = new_net(est, X.shape[1], batch_size, l2_coef, precision)
        else:
            _keep_training(est.net_, est, batch_size, l2_coef, precision,
                           incremental)
        net = est.net_
        _set_fit_params(
            net, train_split=None if valid is None else predefined_split(valid),
            iterator_train__generator=torch.Generator().manual_seed(seed),
            iterator_train__transform=est._batch_transform())
        bar = dict(net.callbacks_).get("progress_bar")
        if isinstance(bar, EpochProgressBar):
            bar.total = epochs
        cpu = torch.device(est.device_).type == "cpu"
        work = est._batch_work(batch_size) if cpu else None
        try:
            with fit_threads(work), ctrl_c_watch() as pressed:
                net.__dict__["ctrl_c_pressed_"] = pressed
                net.partial_fit(train, None, epochs=epochs)
        finally:
            # the fitted net keeps neither the data nor the RNG
            _set_fit_params(net, train_split=None, iterator_train__generator=None)
            net.__dict__.pop("ctrl_c_pressed_", None)
    set_fitted_attributes(est, incremental, pressed())


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


def set_fitted_attributes(est, incremental, interrupted):
    """scikit-learn's fitted attributes from the net and its history, and
    scikit-learn's warnings and errors at the end of a fit."""
    net = est.net_
    # epochs that ran to their end: a Ctrl-C can stop one midway
    history = [row for row in net.history if "train_loss" in row]
    est.n_iter_ = net.epochs_run_
    lbfgs_state = {}
    if est.solver == "lbfgs":
        lbfgs_state = net.optimizer_.state[net.optimizer_.param_groups[0]["params"][0]]
        est.n_iter_ = int(lbfgs_state.get("n_iter", 1))
    est.loss_curve_ = [float(row["train_loss"]) for row in history]
    est.loss_ = est.loss_curve_[-1] if history else np.nan
    est.t_ = int(sum(row["train_samples"] for row in history))
    stopping = dict(net.callbacks_).get("sklearn_stopping")
    if early_stopping(est):
        est.best_loss_ = None
        est.validation_scores_ = [float(row["valid_acc"]) for row in history
                                  if "valid_acc" in row]
        est.best_validation_score_ = max(est.validation_scores_, default=-np.inf)
    else:
        est.best_loss_ = (stopping.best_ if stopping is not None
                          else min(est.loss_curve_, default=np.inf))
        est.validation_scores_ = None
        est.best_validation_score_ = None
    est.n_outputs_ = est.target_encoder_.n_outputs_
    est.out_activation_ = est.target_encoder_.out_activation_
    est.history_ = [_history_record(row) for row in history]
    est._set_layer_attributes()

    if not all(bool(torch.isfinite(p).all()) for p in net.module_.parameters()):
        raise ValueError(
            "Solver produced non-finite parameter weights. The input data may "
            "contain large values and need to be preprocessed.")
    stopped = stopping is not None and stopping.stop_reason_ is not None
    if interrupted:
        warn_external("Training interrupted by user.")
    elif est.solver == "lbfgs":
        if (est.n_iter_ >= est.max_iter
                or lbfgs_state.get("func_evals", 0) >= est.max_fun):
            warn_external(
                "lbfgs failed to converge (status=1): STOP: TOTAL NO. OF "
                "ITERATIONS REACHED LIMIT. Increase the number of iterations "
                "(max_iter) or scale the data.", ConvergenceWarning)
    elif (not incremental and not stopped and est.n_iter_ == est.max_iter
          and (est.n_iter_no_change != np.inf or est.warm_start)):
        # a fresh fit with n_iter_no_change=np.inf asks for exactly max_iter
        # epochs (Keras' fit(epochs=...)): reaching them is the plan, not a
        # failure. A warm start continues an earlier optimisation, which
        # scikit-learn reports at max_iter whatever the patience (its own
        # test_mlp_warm_start_no_convergence, run in test_sklearn_mlp.py)
        warn_external(
            f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached "
            "and the optimization hasn't converged yet.", ConvergenceWarning)


def learning_rate(net):
    """The learning rate the optimizer uses now."""
    return net.optimizer_.param_groups[0]["lr"]


__all__ = ["SknnNet", "fit", "learning_rate"]
