"""Progress display: the bar of ``progress_bar=True`` (the estimators and
``sknn train`` alike) and the printing that keeps ``verbose`` lines intact
beside it.

The bar has two lines: the epochs of the fit, with the last epoch's figures,
and the batches of the current epoch as they run, with their running loss.
It is drawn only on a terminal or in a notebook; anywhere else (a log file, a
pipe, a captured stream) the fit ends with one plain line of figures instead
of a stream of redrawn frames.

tqdm comes with skorch, so the bar needs no extra install.
"""

import sys

from skorch.callbacks import Callback


def echo(text):
    """Print a line to stdout without breaking a progress bar that is showing
    (tqdm clears the bar, prints the line, then redraws the bar)."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stdout)


#: the epoch bar: tqdm's default without the rate
EPOCH_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

#: history key -> the label the bar shows
LABELS = {"train_loss": "loss", "train_acc": "accuracy",
          "valid_loss": "val_loss", "valid_acc": "val_accuracy",
          "valid_r2": "val_r2"}


def stop_reason(net):
    """Why a callback ended training early, in words, or None.

    sknn's own stopping callbacks (and the adapter of scikit-learn's
    callbacks) say why in ``stop_reason_``; skorch's ``EarlyStopping`` is
    described from its monitor and patience.
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


def draws_on(stream):
    """Whether a bar on ``stream`` is drawn: in a notebook (where tqdm.auto
    shows a widget) or on a terminal."""
    from tqdm.autonotebook import tqdm as notebook_or_std
    from tqdm.std import tqdm as std

    if notebook_or_std is not std:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def epoch_figures(row):
    """The labelled figures of one epoch of skorch history, as the bar shows
    them: ``{'loss': '0.1234', 'accuracy': ...}``."""
    return {label: f"{row[key]:.4f}" for key, label in LABELS.items() if key in row}


class EpochProgressBar(Callback):
    """A tqdm bar over the epochs of a fit, and one over the batches of the
    running epoch.

    The epoch bar's postfix shows the latest epoch's training loss and
    accuracy (and validation loss and accuracy with early stopping), labelled
    ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy``. The batch bar
    counts the training batches of the current epoch, with their rate and the
    running mean of their loss (the data term: the epoch's ``loss`` adds the L2
    penalty). When training ends before the planned epochs, a line says at
    which epoch and why.

    Bars are drawn only on a terminal or in a notebook. On any other stream
    nothing is drawn, and when training ends one line gives the epochs run
    and the last epoch's figures.

    The running loss comes from the batch losses skorch's training loop
    records in the history (as floats, on any device): the bar reads no
    tensor and adds no wait for a GPU.

    Parameters
    ----------
    total : int, default=None
        The number of epochs planned for the fit; ``net.max_epochs`` when None.
    desc : str, default='train'
        The epoch bar's label.
    batches : bool, default=True
        Show the batch bar.
    file : file-like, default=None
        Where to draw; ``sys.stderr`` (as it is when training starts) when None.
    """

    def __init__(self, total=None, desc="train", batches=True, file=None):
        self.total = total
        self.desc = desc
        self.batches = batches
        self.file = file

    def initialize(self):
        self.bar_ = None
        self.batch_bar_ = None
        return self

    # ------------------------------------------------------------ training
    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.epochs_ = 0
        self.total_ = self.total or net.max_epochs
        self.stream_ = sys.stderr if self.file is None else self.file
        self.last_row_ = {}
        self.drawn_ = draws_on(self.stream_)
        self.bar_ = self.batch_bar_ = None
        if not self.drawn_:
            return
        # no epoch rate (the batch bar has one): room for four figures
        self.bar_ = tqdm(total=self.total_, desc=self.desc, unit="epoch",
                         file=self.stream_, leave=True, dynamic_ncols=True,
                         bar_format=EPOCH_BAR)
        if self.batches:
            self.batch_bar_ = tqdm(total=None, desc="epoch 1", unit="batch",
                                   file=self.stream_, leave=False,
                                   dynamic_ncols=True)

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        bar = self.batch_bar_
        if bar is None:
            return
        total = None
        if dataset_train is not None and net.batch_size:
            total = -(-len(dataset_train) // net.batch_size)
        bar.reset(total=total)
        bar.set_description_str(f"epoch {self.epochs_ + 1}", refresh=False)
        bar.set_postfix_str("", refresh=False)
        self.seen_ = 0
        self.loss_sum_ = 0.0

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        bar = self.batch_bar_
        if bar is None or not training:
            return
        size = len(batch[1]) if batch is not None else 1
        self.seen_ += size
        batches = net.history[-1]["batches"]
        if batches and "train_loss" in batches[-1]:
            # skorch's loop records each batch loss as a float before
            # on_batch_end
            self.loss_sum_ += batches[-1]["train_loss"] * size
            bar.set_postfix_str(f"loss={self.loss_sum_ / self.seen_:.4f}",
                                refresh=False)
        bar.update(1)

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1
        self.last_row_ = net.history[-1]
        if self.bar_ is None:
            return
        self.bar_.set_postfix(epoch_figures(self.last_row_), refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        if not hasattr(self, "epochs_"):
            return
        stopped = self.epochs_ < self.total_
        if self.batch_bar_ is not None:
            self.batch_bar_.close()
        if self.bar_ is not None:
            if stopped:
                self.bar_.set_description_str(
                    f"{self.desc}: stopped at epoch {self.epochs_}/{self.total_}")
            self.bar_.close()
        elif not self.drawn_:
            # not drawn: the outcome in one line, for the log
            head = (f"stopped at epoch {self.epochs_}/{self.total_}" if stopped
                    else f"{self.epochs_}/{self.total_} epochs")
            figures = "".join(f", {label}={value}" for label, value
                              in epoch_figures(self.last_row_).items())
            print(f"{self.desc}: {head}{figures}", file=self.stream_)
        if stopped:
            reason = stop_reason(net) or "training was stopped."
            print(f"Stopped early at epoch {self.epochs_} of {self.total_}: "
                  f"{reason}", file=self.stream_)
        # tqdm bars and the stream are not picklable: keep the fitted model
        # picklable, and hold no device tensor
        self._forget()

    def _forget(self):
        self.bar_ = self.batch_bar_ = None
        for name in ("stream_", "last_row_"):
            self.__dict__.pop(name, None)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["bar_"] = state["batch_bar_"] = None
        for name in ("stream_", "last_row_"):
            state.pop(name, None)
        return state
