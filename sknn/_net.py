"""TensorNet: the skorch ``NeuralNetClassifier`` that sknn estimators keep as ``net_``.

It departs from skorch's defaults in the data path only. skorch builds a
``Dataset`` and a ``DataLoader`` that index and collate one sample at a time;
here the data are tensors on the device already (see ``sknn._data``), batches are
slices, and epoch-level loss and accuracy are accumulated on the device and read
once per epoch. Everything else (callbacks, history, ``initialize``, optimizer
and module handling, pickling) is skorch's own.
"""

import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EpochTimer
from torch import nn

from sknn._data import BatchIterator, as_float32_tensor

#: layers whose weights scikit-learn's L2 penalty (``alpha``) applies to
DECAYED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


class TrainValid:
    """What :meth:`TensorNet.partial_fit` takes as X: prepared datasets."""

    def __init__(self, train, valid=None):
        self.train = train
        self.valid = valid

    def __len__(self):
        return len(self.train)


class TensorNet(NeuralNetClassifier):
    """A skorch ``NeuralNetClassifier`` fed with device tensors.

    Extra parameters
    ----------------
    loss_family : {'ce', 'bce'}
        Softmax cross-entropy on class indices, or one sigmoid per output with
        binary cross-entropy summed over outputs (scikit-learn's log-loss).
    penalty_in_loss : float
        For optimizers without parameter groups (L-BFGS): the L2 coefficient c
        added to the loss as ``0.5 * c * ||W||^2``. Otherwise the penalty is the
        optimizer's ``weight_decay`` on weights only.
    batch_transform : callable or None
        Applied to each training X batch (augmentation); never at predict time.
    predict_batch_size : int
        Rows per forward pass at predict time.
    """

    def __init__(self, module, *args, loss_family="ce", penalty_in_loss=0.0,
                 batch_transform=None, predict_batch_size=8192, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.loss_family = loss_family
        self.penalty_in_loss = penalty_in_loss
        self.batch_transform = batch_transform
        self.predict_batch_size = predict_batch_size

    @property
    def _default_callbacks(self):
        return [("epoch_timer", EpochTimer())]

    def check_data(self, X, y=None):
        # the estimator validated X and y before they became tensors
        pass

    # ----------------------------------------------------------------- optimizer
    def _decayed_weights(self):
        return [m.weight for m in self.module_.modules()
                if isinstance(m, DECAYED_LAYERS)]

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        kwargs.setdefault("lr", self.lr)
        weight_decay = kwargs.pop("weight_decay", 0.0)
        params = [p for p in self.module_.parameters() if p.requires_grad]
        if self.optimizer is torch.optim.LBFGS:
            self.optimizer_ = self.optimizer(params, **kwargs)
            return self
        decayed = self._decayed_weights()
        decayed_ids = {id(p) for p in decayed}
        groups = [{"params": decayed, "weight_decay": weight_decay},
                  {"params": [p for p in params if id(p) not in decayed_ids],
                   "weight_decay": 0.0}]
        self.optimizer_ = self.optimizer(groups, **kwargs)
        return self

    def _squared_weights(self):
        """||W||^2 over the weights the L2 term applies to, as a 0-d tensor."""
        return sum(w.pow(2).sum() for w in self._decayed_weights())

    def l2_penalty(self):
        """The L2 term the optimizer's weight decay stands for, 0.5 * c * ||W||^2,
        as a float: scikit-learn's ``loss_curve_`` includes it."""
        coef = self.optimizer_.param_groups[0].get("weight_decay", 0.0)
        if not coef:
            return 0.0
        with torch.no_grad():
            return 0.5 * coef * float(self._squared_weights())

    # ---------------------------------------------------------------- data path
    def get_split_datasets(self, X, y=None, **fit_params):
        return X.train, X.valid

    def get_iterator(self, dataset, training=False):
        if training:
            return BatchIterator(
                dataset, self.batch_size, shuffle=self.iterator_train__shuffle,
                generator=getattr(self, "generator_", None),
                transform=self.batch_transform,
            )
        return BatchIterator(dataset, self.predict_batch_size)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        weight = None
        if isinstance(y_true, tuple):
            y_true, weight = y_true
        if self.loss_family == "ce":
            per_sample = nn.functional.cross_entropy(y_pred, y_true, reduction="none")
        else:
            per_sample = nn.functional.binary_cross_entropy_with_logits(
                y_pred, y_true, reduction="none").sum(dim=1)
        if weight is None:
            loss = per_sample.mean()
        else:
            loss = (per_sample * weight).sum() / weight.sum()
        if training and self.penalty_in_loss:
            loss = loss + 0.5 * self.penalty_in_loss * self._squared_weights()
        return loss

    def _correct(self, y_pred, y_true):
        """Correct predictions in a batch: a count, or a weighted sum when the
        batch carries sample weights (a 0-d tensor either way)."""
        weight = None
        if isinstance(y_true, tuple):
            y_true, weight = y_true
        if self.loss_family == "ce":
            correct = y_pred.argmax(dim=1) == y_true
        else:
            correct = ((y_pred > 0) == (y_true > 0.5)).all(dim=1)
        return correct.sum() if weight is None else (correct * weight).sum()

    def get_train_step_accumulator(self):
        if self.optimizer is torch.optim.LBFGS:
            # L-BFGS evaluates the loss many times per step: report the last
            return _LastStepAccumulator()
        return super().get_train_step_accumulator()

    def train_step_single(self, batch, **fit_params):
        Xb, yb = batch
        y_pred = self.module_(Xb)
        loss = self.get_loss(y_pred, yb, X=Xb, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        Xb, yb = batch
        with torch.no_grad():
            y_pred = self.module_(Xb)
            loss = self.get_loss(y_pred, yb, X=Xb, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        """One optimizer step on ``batch``.

        skorch's own ``train_step`` wraps the step in a closure and notifies
        ``on_grad_computed`` with a generator of all parameters; that is kept
        for L-BFGS (which needs the closure) and whenever a callback listens to
        ``on_grad_computed``, and skipped otherwise: on small nets it costs as
        much as the forward pass.
        """
        if self.optimizer is torch.optim.LBFGS or self._grad_listeners:
            return super().train_step(batch, **fit_params)
        self.optimizer_.zero_grad()
        step = self.train_step_single(batch, **fit_params)
        self.optimizer_.step()
        return step

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._grad_listeners = any(
            getattr(type(cb), "on_grad_computed", None) not in (
                None, Callback.on_grad_computed)
            for _, cb in self.callbacks_)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """One pass over ``iterator``; records ``<prefix>_loss``, ``<prefix>_acc``,
        ``<prefix>_samples`` and ``<prefix>_batch_count`` for the epoch.

        Per-batch losses and correct counts stay on the device and are reduced
        once at the end of the epoch: no GPU synchronisation and no extra
        arithmetic per batch.
        """
        if iterator is None:
            return
        self._set_training(training)
        weight = iterator.dataset.weight
        losses, corrects, sizes = [], [], []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            batch_size = len(batch[0])
            losses.append(step["loss"].detach())
            corrects.append(self._correct(step["y_pred"], batch[1]))
            sizes.append(batch_size)
            self.history.record_batch(prefix + "_batch_size", batch_size)
            self.notify("on_batch_end", batch=batch, training=training, **step)
        n_samples = sum(sizes)
        device = losses[0].device
        sizes_t = torch.tensor(sizes, dtype=losses[0].dtype, device=device)
        loss = float(torch.stack(losses) @ sizes_t) / n_samples
        if training and not self.penalty_in_loss:
            # scikit-learn's loss_curve_ includes the L2 term
            loss += self.l2_penalty()
        # every sample is seen once per epoch: the weight total is the dataset's
        total = n_samples if weight is None else float(weight.sum())
        self.history.record(prefix + "_loss", loss)
        self.history.record(prefix + "_acc",
                            float(torch.stack(corrects).sum()) / total)
        self.history.record(prefix + "_samples", n_samples)
        self.history.record(prefix + "_batch_count", len(sizes))

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        self.stop_reason_ = None
        self.interrupted_ = False
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            # a callback's planned stop records its reason; anything else is a
            # real Ctrl-C, which keeps the model trained so far (as sklearn does)
            self.interrupted_ = self.stop_reason_ is None
            return self

    # ------------------------------------------------------------ predict path
    def forward_outputs(self, X):
        """Activated outputs (softmax or sigmoid) for a device tensor X, computed
        in large batches without autograd."""
        module = self.module_
        if module.training:
            module.eval()
        activate = torch.softmax if self.loss_family == "ce" else _sigmoid
        bs = self.predict_batch_size
        with torch.inference_mode():
            if len(X) <= bs:
                return activate(module(X), dim=1)
            return torch.cat([activate(module(X[i:i + bs]), dim=1)
                              for i in range(0, len(X), bs)])

    def predict_proba(self, X):
        """Activated network outputs for X (array or tensor), as numpy."""
        if not isinstance(X, torch.Tensor):
            X = as_float32_tensor(X, self.device)
        return self.forward_outputs(X.to(self.device)).cpu().numpy()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("generator_", None)
        return state


class _LastStepAccumulator:
    """Keeps the last of the steps an optimizer's closure produced."""

    def store_step(self, step):
        self.step = step

    def get_step(self):
        return self.step


def _sigmoid(x, dim=None):
    return torch.sigmoid(x)


__all__ = ["TensorNet", "TrainValid"]
