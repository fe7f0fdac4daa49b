"""skorch callbacks that give the training loop scikit-learn's MLP semantics.

Each callback keeps its state in ``*_`` attributes and resets it in
``initialize()``, which skorch calls when the net is (re)initialised but not on
``partial_fit`` or a warm-started ``fit``, exactly when scikit-learn keeps its
``best_loss_``, no-improvement counter and ``t_``. They read the history keys
skorch's default scorers write (``train_loss``, ``valid_acc``), so they compose
with any stock skorch callback.

A callback stops training the way skorch's own ``EarlyStopping`` does, by
raising ``KeyboardInterrupt``: that is a normal end of training. Only a real
Ctrl-C is reported as an interruption (:class:`CtrlCWatch` watches SIGINT).
"""

import math
import signal
import threading

import numpy as np
import torch
from skorch.callbacks import Callback, EpochScoring, PassthroughScoring

from sknn._progress import echo


def set_lr(optimizer, lr):
    """Set the learning rate of every parameter group of ``optimizer``.

    With SGD momentum, torch keeps a buffer of raw gradients and steps by
    ``lr * buffer``, while scikit-learn keeps a velocity of rate-scaled
    gradients. When the rate changes, each momentum buffer is rescaled by
    ``old_lr / new_lr`` so that ``lr * buffer`` (scikit-learn's velocity) is
    preserved and the next steps are scikit-learn's.
    """
    for group in optimizer.param_groups:
        old = group["lr"]
        if group.get("momentum") and old != lr and lr > 0:
            for param in group["params"]:
                buffer = optimizer.state.get(param, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(old / lr)
        group["lr"] = lr


class NoImprovementStopping(Callback):
    """Stop (or divide the learning rate by 5) after ``n_iter_no_change`` epochs
    without an improvement of more than ``tol``, as scikit-learn's MLP does.

    Parameters
    ----------
    monitor : {'train_loss', 'valid_acc', 'valid_r2'}
        The training loss (lower is better) when ``early_stopping=False``, the
        validation accuracy or, for a regressor, R^2 (higher is better) when it
        is True.
    tol : float
    n_iter_no_change : int or inf
    adaptive : bool
        scikit-learn's ``learning_rate='adaptive'``: instead of stopping, divide
        the learning rate by 5, and stop once it is at most 1e-6.

    Attributes
    ----------
    best_ : float
        The best score so far (scikit-learn's ``best_loss_`` or
        ``best_validation_score_``); never NaN.
    no_improvement_count_ : int
        scikit-learn's ``_no_improvement_count``: an epoch whose score is NaN
        restarts it, as in scikit-learn (its comparisons are False).
    stop_reason_ : str or None
        Why this callback ended the last fit, or None if it did not.
    """

    def __init__(self, monitor="train_loss", tol=1e-4, n_iter_no_change=10,
                 adaptive=False):
        self.monitor = monitor
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.adaptive = adaptive

    @property
    def _higher_is_better(self):
        return self.monitor.endswith(("acc", "r2"))

    def initialize(self):
        self.best_ = -np.inf if self._higher_is_better else np.inf
        self.no_improvement_count_ = 0
        self.stop_reason_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        self.stop_reason_ = None

    def on_epoch_end(self, net, **kwargs):
        score = net.history[-1, self.monitor]
        # scikit-learn's comparisons (``_update_no_improvement_count``), also
        # for a NaN score: it compares False both ways, so it restarts the
        # count and is never the best
        if self._higher_is_better:
            no_improvement = score < self.best_ + self.tol
            is_best = score > self.best_
        else:
            no_improvement = score > self.best_ - self.tol
            is_best = score < self.best_
        self.no_improvement_count_ = (self.no_improvement_count_ + 1
                                      if no_improvement else 0)
        if is_best:
            self.best_ = float(score)
        if self.no_improvement_count_ <= self.n_iter_no_change:
            return
        what = ("Validation score" if self._higher_is_better else "Training loss")
        reason = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        if self.adaptive:
            lr = net.optimizer_.param_groups[0]["lr"]
            if lr > 1e-6:
                set_lr(net.optimizer_, lr / 5.0)
                self.no_improvement_count_ = 0
                if net.verbose:
                    echo(f"{reason} Setting learning rate to {lr / 5.0:f}")
                return
            reason += " Learning rate too small."
        if net.verbose:
            echo(f"{reason} Stopping.")
        self.stop_reason_ = reason
        raise KeyboardInterrupt


class NonFiniteStop(Callback):
    """End training at the first epoch whose loss and weights are not finite
    (float64 X beyond float32's range, or a diverging step): NaN weights stay
    NaN, so the epochs left could not change the model. Training ends
    normally: early stopping still restores its best weights, and a fit whose
    weights stay non-finite raises scikit-learn's error
    (``sknn._net.check_finite_weights``)."""

    def on_epoch_end(self, net, **kwargs):
        if diverged(net.history[-1].get("train_loss", 0.0),
                    net.module_.parameters()):
            raise KeyboardInterrupt


def diverged(loss, parameters):
    """:class:`NonFiniteStop`'s rule, which stacked fits follow too: the
    epoch's loss is not finite, and neither are the weights (checked only
    then)."""
    return not math.isfinite(loss) and not all(
        bool(torch.isfinite(p).all()) for p in parameters)


class RestoreBestWeights(Callback):
    """scikit-learn's early stopping keeps the weights of the epoch with the
    best validation score: copy them whenever ``<monitor>_best`` (skorch's
    flag of the scorer, ``valid_acc_best`` for a classifier, ``valid_r2_best``
    for a regressor) is set and put them back when training ends (before any
    user callback saves the final weights).

    As scikit-learn's ``_best_coefs``, the copy starts as the weights training
    starts from: when no epoch's score beats the best so far (every score
    NaN, a diverging fit), training ends with them, not with the last epoch's
    (NaN) weights.
    """

    def __init__(self, monitor="valid_acc"):
        self.monitor = monitor

    def initialize(self):
        self.best_state_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        self.best_state_ = {k: v.detach().clone()
                            for k, v in net.module_.state_dict().items()}

    def on_epoch_end(self, net, **kwargs):
        if net.history[-1].get(f"{self.monitor}_best"):
            self.best_state_ = {k: v.detach().clone()
                                for k, v in net.module_.state_dict().items()}

    def on_train_end(self, net, **kwargs):
        if self.best_state_ is not None:
            net.module_.load_state_dict(self.best_state_)
        # the copy served its purpose: the module holds those weights now
        self.best_state_ = None


class CtrlCWatch(Callback):
    """Tell a real Ctrl-C from a callback's planned stop.

    Both reach skorch as ``KeyboardInterrupt``, which ends training normally
    (skorch's ``EarlyStopping`` stops that way). While training runs (in the
    main thread, where signals arrive), SIGINT first notes that the user
    pressed Ctrl-C, then does what it did before. If the KeyboardInterrupt
    is caught on its way (in a ``__del__``, a callback's ``except`` clause),
    training still stops at the end of the batch.

    Attributes
    ----------
    pressed_ : bool
        Whether Ctrl-C was pressed during the last fit.
    """

    def initialize(self):
        self.pressed_ = False
        self._previous = None
        return self

    def on_train_begin(self, net, **kwargs):
        self.pressed_ = False
        if (self._previous is not None
                or threading.current_thread() is not threading.main_thread()):
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # ignored or default: nothing to tell apart
            return

        def _note(signum, frame):
            self.pressed_ = True
            previous(signum, frame)

        signal.signal(signal.SIGINT, _note)
        self._previous = previous

    def on_batch_end(self, net, **kwargs):
        if self.pressed_:
            raise KeyboardInterrupt

    def on_train_end(self, net, **kwargs):
        self.release()

    def release(self):
        """Give SIGINT its previous handler back (also called by the fit when
        an exception ends training, where skorch calls no on_train_end)."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class InvScalingLR(Callback):
    """scikit-learn's ``learning_rate='invscaling'``: after each epoch the rate
    becomes ``learning_rate_init / (t + 1) ** power_t``, t the samples seen
    since the net was initialised (warm starts continue counting)."""

    def __init__(self, learning_rate_init=1e-3, power_t=0.5):
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t

    def initialize(self):
        self.t_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.t_ += net.history[-1, "train_samples"]
        set_lr(net.optimizer_,
               self.learning_rate_init / pow(self.t_ + 1, self.power_t))


class SklearnPrintLog(Callback):
    """Print one line per epoch, worded as scikit-learn's MLP does.

    It takes the place of skorch's default ``print_log`` (pass
    ``("print_log", PrintLog())`` in ``callbacks`` for skorch's table).
    """

    def on_epoch_end(self, net, **kwargs):
        if not net.verbose:
            return
        row = net.history[-1]
        echo(f"Iteration {row['epoch']}, loss = {row['train_loss']:.8f}")
        for key in ("valid_acc", "valid_r2"):
            if key in row:
                echo(f"Validation score: {row[key]:f}")


def weighted_accuracy(net, X, y):
    """Accuracy on the validation set, weighted by its sample weights as
    scikit-learn's MLP weights its validation score (a skorch scorer)."""
    from sklearn.metrics import accuracy_score

    weight = getattr(X, "weight", None)
    if weight is not None:
        weight = weight.cpu().numpy()
    return accuracy_score(y, net.predict(X), sample_weight=weight)


def validation_accuracy():
    """skorch's default ``valid_acc`` scorer, with sample weights."""
    return EpochScoring(weighted_accuracy, name="valid_acc", lower_is_better=False)


class BatchLossScoring(PassthroughScoring):
    """skorch's ``PassthroughScoring`` (its default ``train_loss`` and
    ``valid_loss``: the batch losses averaged by batch size, and the
    ``*_best`` flag), reading the epoch's batch records in one pass.

    skorch's reads them through history slicing, which cost 0.3 ms an epoch:
    2% of a 20-epoch digits fit. The values are skorch's to the last bits.
    """

    def on_epoch_end(self, net, **kwargs):
        size_key = "train_batch_size" if self.on_train else "valid_batch_size"
        rows = [row for row in net.history[-1]["batches"] if self.name in row]
        if not rows:  # no validation data
            return
        # np.average of the batch losses weighted by batch size, in Python
        # (numpy's call costs ~15 us an epoch, for a few numbers); equal to
        # the last bits (numpy sums 8 or more terms pairwise)
        score = (sum(row[self.name] * row[size_key] for row in rows)
                 / sum(row[size_key] for row in rows))
        is_best = self._is_best_score(score)
        if is_best:
            self.best_score_ = score
        net.history.record(self.name, score)
        if is_best is not None:
            net.history.record(self.name + "_best", bool(is_best))


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


def weighted_r2(net, X, y):
    """R^2 on the validation set, weighted by its sample weights, as
    scikit-learn's MLPRegressor scores its validation set (a skorch scorer);
    NaN where the predictions are not finite, as scikit-learn's."""
    from sklearn.metrics import r2_score

    weight = getattr(X, "weight", None)
    if weight is not None:
        weight = weight.cpu().numpy()
    y_pred = np.asarray(net.predict(X), dtype=np.float64)
    if not np.isfinite(y_pred).all():
        return np.nan
    return r2_score(np.asarray(y, dtype=np.float64), y_pred, sample_weight=weight)


def validation_r2():
    """The ``valid_r2`` scorer of a regressor's early stopping."""
    return EpochScoring(weighted_r2, name="valid_r2", lower_is_better=False)
