"""The skorch net sknn estimators keep as ``net_``.

:class:`SknnNet` is skorch's ``NeuralNetClassifier`` with scikit-learn's loss
(sample-weighted, L2 term in the recorded loss), a slicing data path and mixed
precision. It departs from skorch only through skorch's documented extension
points: the step methods (``infer``, ``get_loss``, ``train_step_single``,
``train_step``, ``validation_step``) and the net's own callback hooks
(``on_train_begin``, ``on_batch_end``, ``on_epoch_end``), which skorch calls
before any callback's. skorch's ``run_single_epoch`` is not overridden:
sknn's earlier override only deferred each batch's ``loss.item()`` on a GPU;
on the CPU it did the work skorch's loop does (``.item()`` costs ~1 us a
batch there), and a digits fit (hidden 100, 20 epochs, one thread) took
0.320 s with it against 0.279 s after this split (float64 X; float32 0.226 s
against 0.202 s; medians of 15 interleaved rounds, load average 4.6-6.6 on 2
cores). What it saves on a GPU was not measured: no GPU was at hand.

Beside it: the probabilities from the logits (float64, as scikit-learn's),
the pickling of a net without its optimizer state, and the learning rate.
"""

from collections.abc import Mapping
from contextlib import nullcontext

import numpy as np
import torch
from scipy.special import expit
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.history import History
from skorch.utils import TeeGenerator

from sknn._losses import (
    HalfPoissonDeviance,
    HalfSquaredError,
    identity,
    unweighted_mean,
)
from sknn._modules import l2_weights
from sknn._targets import REGRESSION_KINDS

#: rows per forward pass when predicting or validating
PREDICT_BATCH_SIZE = 8192
#: what a fit keeps on the net while it runs
_TRANSIENT = ("_trained_params", "_l2_weights", "_predicted", "_train_weight",
              "_on_device", "_listeners")
#: the callback methods skorch calls every batch or epoch
_LOOP_METHODS = ("on_batch_begin", "on_batch_end", "on_epoch_begin",
                 "on_epoch_end")
#: scikit-learn's error for weights that are not finite after training, and
#: what it means for a network that computes in float32
NON_FINITE_WEIGHTS = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed. The network computes in "
    f"float32, whose largest magnitude is {float(np.finfo(np.float32).max):.4g}: "
    "scale X first, for instance with sklearn.preprocessing.StandardScaler.")


def check_finite_weights(parameters):
    """Raise scikit-learn's ``ValueError`` when a parameter is not finite."""
    if not all(bool(torch.isfinite(p).all()) for p in parameters):
        raise ValueError(NON_FINITE_WEIGHTS)


def _softmax(logits):
    return torch.softmax(logits, dim=1)


def _binary_proba(logits):
    # one sigmoid output -> the two columns of predict_proba
    p = torch.sigmoid(logits).reshape(-1, 1)
    return torch.cat([1 - p, p], dim=1)


#: network output (``sknn._targets.KINDS``) -> (criterion, predict_nonlinearity)
OUTPUTS = {
    "multiclass": (torch.nn.CrossEntropyLoss, _softmax),
    "binary": (torch.nn.BCEWithLogitsLoss, _binary_proba),
    "multilabel": (torch.nn.BCEWithLogitsLoss, torch.sigmoid),
    "continuous": (HalfSquaredError, identity),
    "poisson": (HalfPoissonDeviance, torch.exp),
}


class TrainingHistory(History):
    """skorch's ``History`` as a fit writes it: the same rows, with the
    calls a training loop makes per batch and per epoch (``new_batch``,
    ``record_batch``, ``record``, ``history[-1]``, ``history[-1, key]``)
    reading the last row directly instead of through the general indexing
    (which costs 8 us a call; a fit makes 4 a batch and about 15 an epoch).
    """

    def __getitem__(self, i):
        if type(i) is int:
            return list.__getitem__(self, i)
        if (type(i) is tuple and len(i) == 2 and type(i[0]) is int
                and type(i[1]) is str):
            row = list.__getitem__(self, i[0])
            if i[1] in row:
                return row[i[1]]
        return super().__getitem__(i)  # and its errors

    def record(self, attr, value):
        if not self:
            return super().record(attr, value)
        list.__getitem__(self, -1)[attr] = value

    def new_batch(self):
        list.__getitem__(self, -1)["batches"].append({})

    def record_batch(self, attr, value):
        list.__getitem__(self, -1)["batches"][-1][attr] = value


def _listens(callback, method):
    """Whether ``callback`` does something in ``method`` (skorch's base
    ``Callback`` methods do nothing)."""
    return (method in vars(callback)
            or getattr(type(callback), method, None) is not getattr(Callback, method))


def net_class(kind):
    """The net for a network output: :class:`SknnRegressorNet` (skorch's
    ``NeuralNetRegressor``) for regression, else :class:`SknnNet`."""
    return SknnRegressorNet if kind in REGRESSION_KINDS else SknnNet


class SknnNetMixin:
    """What sknn's nets add to skorch's: scikit-learn's loss, a slicing data
    path and mixed precision. :class:`SknnNet` is it on skorch's
    ``NeuralNetClassifier``, :class:`SknnRegressorNet` on its
    ``NeuralNetRegressor``.

    Extra parameters
    ----------------
    target_kind : {'multiclass', 'binary', 'multilabel', 'continuous', 'poisson'}
        The network output (``sknn._targets.KINDS``): softmax cross-entropy on
        class indices, one sigmoid output, or one sigmoid per label (binary
        cross-entropy summed over outputs: sklearn's log-loss); for
        regression, scikit-learn's half squared error or half Poisson
        deviance (``sknn._losses``).
    penalty_in_loss : float
        For L-BFGS, which takes no parameter groups: the L2 coefficient c added
        to the loss as ``0.5 * c * ||W||^2``. Other optimizers get the penalty
        as weight decay on the L2 parameter group.
    autocast_dtype : torch.dtype or None
        Mixed precision for the forward pass and the loss (weights stay
        float32); None trains in float32.
    grad_scaler : torch.amp.GradScaler or None
        Loss scaling for float16 training.

    History
    -------
    Beside skorch's keys (``train_loss``, ``train_batch_size``,
    ``train_batch_count``, ``valid_*``, ``dur``...), each epoch records
    ``train_samples`` and, for classification, ``train_acc`` (the
    sample-weighted training accuracy of the batches' predictions); the batch
    losses include the L2 term, as scikit-learn's ``loss_curve_`` does.
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
        on_device = getattr(self, "_on_device", None)
        if not fit_params and on_device is not None and on_device(x):
            return self.module_(x)
        return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        # scikit-learn's loss: the (sample-weighted) mean of per-sample losses,
        # summed over the outputs of a sigmoid per label
        weight = X.get("sample_weight") if isinstance(X, Mapping) else None
        loss = None if weight is not None else unweighted_mean(
            self.criterion_, y_pred, y_true)
        if loss is None:
            per_sample = self.criterion_(y_pred, y_true)
            if per_sample.dim() > 1:
                per_sample = per_sample.sum(dim=1)
            loss = (per_sample.mean() if weight is None
                    else (per_sample * weight).sum() / weight.sum())
        if training and self.penalty_in_loss:
            loss = loss + 0.5 * self.penalty_in_loss * _squared_norm(
                l2_weights(self.module_))
        return loss

    def train_step_single(self, batch, **fit_params):
        # skorch's, within autocast and with the loss scaled for float16; the
        # modules' modes are set here only when a callback (or the validation
        # pass) switched them (skorch sets them on every batch)
        if not self.module_.training:
            self._set_training(True)
        Xi, yi = unpack_data(batch)
        if self.autocast_dtype is None:
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        else:
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
        # listens, and a float16 gradient scaler steps the optimizer. The
        # gradients are cleared by setting them to None, which is what
        # zero_grad() does, without its per-call profiler record (measured:
        # 20 us a batch, 3% of a digits fit)
        if self.optimizer is torch.optim.LBFGS:
            return super().train_step(batch, **fit_params)
        for param in self._trained_params:
            param.grad = None
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

    # ------------------------------------------------- the net's own hooks
    def notify(self, method_name, **cb_kwargs):
        # skorch's, calling in the training loop only the callbacks that
        # do something there (the others are skorch's empty base methods)
        listeners = self.__dict__.get("_listeners")
        if listeners is None or method_name not in listeners:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        for cb in listeners[method_name]:
            getattr(cb, method_name)(self, **cb_kwargs)
        return None

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if type(self.history_) is History:  # new, or a loaded net's
            self.history_ = TrainingHistory(self.history_)
        self._listeners = {
            method: [cb for _, cb in self.callbacks_ if _listens(cb, method)]
            for method in _LOOP_METHODS}
        # epochs of this fit (LoadInitState may load an earlier history)
        self.epochs_run_ = 0
        self._on_device = _device_test(torch.device(self.device))
        self._trained_params = [
            p for group in self.optimizer_.param_groups for p in group["params"]]
        self._l2_weights = l2_weights(self.module_)
        self._grad_listeners = any(
            getattr(type(cb), "on_grad_computed", None) not in (
                None, Callback.on_grad_computed)
            for _, cb in self.callbacks_)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None,
                       **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        self._predicted = []
        self._train_weight = getattr(dataset_train, "weight", None)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None,
                     **kwargs):
        # runs before every callback's on_epoch_end, so the scorers (skorch's
        # train_loss) and sknn's callbacks read the completed records:
        # scikit-learn's loss_curve_ includes the L2 term, which weight decay
        # keeps out of the optimized loss, so it is added to the batch losses
        rows = [row for row in self.history[-1]["batches"] if "train_loss" in row]
        penalty = self.l2_penalty()
        if penalty:
            for row in rows:
                row["train_loss"] += penalty
        if rows:
            samples = sum(row["train_batch_size"] for row in rows)
            if self._predicted:  # classification: the training accuracy
                weight = self._train_weight
                total = samples if weight is None else float(weight.sum())
                # weights summing to zero leave the weighted accuracy undefined
                self.history.record("train_acc", self._correct() / total
                                    if total else float("nan"))
            self.history.record("train_samples", samples)
        self._predicted = []
        self.epochs_run_ += 1

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        # the fitted net holds neither the training weights nor the lists
        for name in _TRANSIENT:
            if hasattr(self, name):
                delattr(self, name)

    def l2_penalty(self):
        """The L2 term the optimizer's weight decay stands for,
        ``0.5 * c * ||W||^2``, as a float (scikit-learn's loss includes it);
        0 for L-BFGS, whose loss carries the term itself."""
        coef = max(g.get("weight_decay", 0.0) for g in self.optimizer_.param_groups)
        if not coef or self.penalty_in_loss:
            return 0.0
        weights = getattr(self, "_l2_weights", None) or l2_weights(self.module_)
        with torch.no_grad():
            return 0.5 * coef * float(_squared_norm(weights))

    # -------------------------------------------------------------- predict
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


class SknnNet(SknnNetMixin, NeuralNetClassifier):
    """skorch's ``NeuralNetClassifier`` with :class:`SknnNetMixin`: the net of
    the classifiers, which also records the training accuracy."""

    def on_batch_end(self, net, batch=None, training=False, y_pred=None,
                     **kwargs):
        # the training accuracy, from the predictions the step made: each
        # batch's predicted labels (one op, left on the device; holding the
        # outputs themselves until the epoch ends fragments the heap, +0.4 MB
        # a batch) beside its targets and weights, compared once per epoch
        # (three ops a batch fewer)
        if training and y_pred is not None:
            self._predicted.append((self._labels(y_pred.detach()), batch))

    def _labels(self, y_pred):
        if self.target_kind == "multiclass":
            return y_pred.argmax(dim=1)
        return y_pred > 0

    def _correct(self):
        """The epoch's correct training predictions: a count, or the sum of
        the weights of the correct samples."""
        predicted = torch.cat([labels for labels, _ in self._predicted])
        y = torch.cat([batch[1] for _, batch in self._predicted])
        if self.target_kind == "multiclass":
            correct = predicted == y
        else:
            correct = (predicted == (y > 0.5)).all(dim=1)
        if isinstance(self._predicted[0][1][0], Mapping):
            weight = torch.cat([batch[0]["sample_weight"]
                                for _, batch in self._predicted])
            return float((correct * weight).sum())
        return float(correct.sum())

    def predict(self, X):
        # NeuralNetClassifier.predict is the argmax of predict_proba; with one
        # sigmoid per label, each label is predicted on its own
        if self.target_kind == "multilabel":
            return (self.predict_proba(X) > 0.5).astype(np.int64)
        return super().predict(X)


class SknnRegressorNet(SknnNetMixin, NeuralNetRegressor):
    """skorch's ``NeuralNetRegressor`` with :class:`SknnNetMixin`: the net of
    :class:`sknn.MLPRegressorTorch` (float targets of shape (n, n_outputs),
    ``predict`` the outputs through ``predict_nonlinearity``).

    Extra parameter
    ---------------
    loss_scale : float
        The recorded losses (``train_loss``, ``valid_loss``) are the optimized
        data loss times ``loss_scale``: ``1 / n_outputs`` for the squared
        error, which scikit-learn differentiates summed over the outputs but
        reports averaged over them.
    """

    def __init__(self, module, *args, loss_scale=1.0, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.loss_scale = loss_scale

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None,
                     **kwargs):
        # the batch losses as scikit-learn reports them, before the mixin
        # adds the L2 term and skorch's scorers average them
        if self.loss_scale != 1:
            inner = 0.0
            if self.penalty_in_loss:  # L-BFGS: the L2 term is in the loss
                with torch.no_grad():
                    inner = 0.5 * self.penalty_in_loss * float(
                        _squared_norm(l2_weights(self.module_)))
            for row in self.history[-1]["batches"]:
                if "train_loss" in row:
                    row["train_loss"] = ((row["train_loss"] - inner)
                                         * self.loss_scale + inner)
                if "valid_loss" in row:
                    row["valid_loss"] *= self.loss_scale
        super().on_epoch_end(net, dataset_train=dataset_train,
                             dataset_valid=dataset_valid, **kwargs)


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
        The network output: softmax over the outputs, one sigmoid output
        answered as two columns, or a sigmoid per label.
    log : bool, default=False
    """
    if kind == "multiclass" and not log:  # torch's is faster for one row
        return torch.softmax(logits.detach(), dim=1,
                             dtype=torch.float64).cpu().numpy()
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


def _device_test(device):
    """A test of whether ``x`` is a tensor on ``device`` ('cuda' meaning any
    GPU index), cheap on the CPU: ``Tensor.device`` builds a new object on
    every call, ``Tensor.is_cpu`` does not."""
    if device.type == "cpu":
        return lambda x: isinstance(x, torch.Tensor) and x.is_cpu
    return lambda x: (isinstance(x, torch.Tensor) and x.device.type == device.type
                      and (device.index is None or x.device.index == device.index))


class _LastStepAccumulator:
    """Keeps the last of the steps an optimizer's closure produced."""

    def store_step(self, step):
        self.step = step

    def get_step(self):
        return self.step


def _squared_norm(weights):
    # sum(...) would start from 0: one tensor op more, the same value
    if not weights:
        return torch.zeros(())
    total = weights[0].pow(2).sum()
    for w in weights[1:]:
        total = total + w.pow(2).sum()
    return total


# ------------------------------------------------------------------ pickling
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
    for name in _TRANSIENT:  # left by a fit that raised
        slim.__dict__.pop(name, None)
    return slim


def restore_slim(net):
    """Undo :func:`slim_copy` on a net just unpickled."""
    if net.module is None:
        net.module = net.module_  # a known prefix: skorch registers nothing
    if net.optimizer_ is None:
        net.initialize_optimizer()


def learning_rate(net):
    """The learning rate the optimizer uses now."""
    return net.optimizer_.param_groups[0]["lr"]


__all__ = ["OUTPUTS", "PREDICT_BATCH_SIZE", "SknnNet", "SknnNetMixin",
           "SknnRegressorNet", "learning_rate", "net_class",
           "output_probabilities", "restore_slim", "slim_copy"]
