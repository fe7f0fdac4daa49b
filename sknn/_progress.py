"""Progress display: the per-epoch bar of ``progress_bar=True`` (the estimators
and ``sknn train`` alike) and the printing that keeps ``verbose`` lines intact
beside it.

tqdm comes with skorch, so the bar needs no extra install.
"""

import sys

from skorch.callbacks import Callback


def echo(text):
    """Print a line to stdout without breaking a progress bar that is showing
    (tqdm clears the bar, prints the line, then redraws the bar)."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)


#: history key -> the label the bar shows
LABELS = {"train_loss": "loss", "train_acc": "accuracy",
          "valid_loss": "val_loss", "valid_acc": "val_accuracy",
          "valid_r2": "val_r2"}


def stop_reason(net):
    """Why a callback ended training early, in words, or None.

    sknn's own stopping callbacks say why in ``stop_reason_``; skorch's
    ``EarlyStopping`` is described from its monitor and patience.
    """
    from skorch.callbacks import EarlyStopping

    for _, cb in net.callbacks_:
        reason = getattr(cb, "stop_reason_", None)
        if reason:
            return reason
        if isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience:
            return (f"EarlyStopping: {cb.monitor} did not improve for "
                    f"{cb.patience} epochs.")
    return None


class EpochProgressBar(Callback):
    """A tqdm bar over the epochs of a fit, one step per epoch.

    The bar's postfix shows the latest epoch's training loss and accuracy
    (and validation loss and accuracy with early stopping), labelled
    ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy``. When training
    ends before the planned epochs, the bar says at which epoch and why.

    Parameters
    ----------
    total : int, default=None
        The number of epochs planned for the fit; ``net.max_epochs`` when None.
    desc : str, default='train'
        The bar's label.
    """

    def __init__(self, total=None, desc="train"):
        self.total = total
        self.desc = desc

    def initialize(self):
        self.bar_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.epochs_ = 0
        self.total_ = self.total or net.max_epochs
        self.bar_ = tqdm(total=self.total_, desc=self.desc, unit="epoch",
                         file=sys.stderr, leave=True, dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1
        row = net.history[-1]
        text = {label: f"{row[key]:.4f}" for key, label in LABELS.items()
                if key in row}
        self.bar_.set_postfix(text, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        if self.bar_ is None:
            return
        if self.epochs_ < self.total_:
            reason = stop_reason(net) or "training was stopped."
            self.bar_.set_description_str(
                f"{self.desc}: stopped at epoch {self.epochs_}/{self.total_}")
            self.bar_.close()
            print(f"Stopped early at epoch {self.epochs_} of {self.total_}: "
                  f"{reason}", file=sys.stderr)
        else:
            self.bar_.close()
        # a tqdm bar holds a stream: keep the fitted model picklable
        self.bar_ = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["bar_"] = None
        return state
