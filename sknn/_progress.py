"""A per-epoch progress bar (tqdm) for the command line and the examples."""

import sys

from skorch.callbacks import Callback


class EpochProgressBar(Callback):
    """Show one tqdm bar over the epochs of a fit, with loss and accuracy.

    skorch's own ``ProgressBar`` counts batches within each epoch; this one
    counts epochs and shows the latest training (and validation) loss and
    accuracy as the bar's postfix. Without tqdm installed it prints one plain
    line per epoch instead.

    Parameters
    ----------
    total : int, default=None
        The number of epochs the bar expects; ``net.max_epochs`` when None.
    desc : str, default='train'
        The bar's label.
    """

    def __init__(self, total=None, desc="train"):
        self.total = total
        self.desc = desc

    def initialize(self):
        self.bar_ = None
        self.epoch_ = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self.epoch_ = 0
        total = self.total or net.max_epochs
        self.total_ = total
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar_ = None
            print('(tqdm is not installed: plain progress lines; for a bar run '
                  'pip install "sknn[cli]")', file=sys.stderr)
            return
        self.bar_ = tqdm(total=total, desc=self.desc, unit="epoch",
                         file=sys.stderr, leave=True)

    def on_epoch_end(self, net, **kwargs):
        self.epoch_ += 1
        row = net.history[-1]
        stats = {"loss": row.get("train_loss"), "acc": row.get("train_acc")}
        if "valid_loss" in row:
            stats["val_loss"] = row.get("valid_loss")
            stats["val_acc"] = row.get("valid_acc")
        text = {k: f"{v:.4f}" for k, v in stats.items() if v is not None}
        if self.bar_ is not None:
            self.bar_.set_postfix(text, refresh=False)
            self.bar_.update(1)
        else:
            shown = " ".join(f"{k}={v}" for k, v in text.items())
            print(f"epoch {self.epoch_}/{self.total_} {shown}", file=sys.stderr,
                  flush=True)

    def on_train_end(self, net, **kwargs):
        if self.bar_ is not None:
            self.bar_.close()
        # a tqdm bar holds a stream: keep the fitted model picklable
        self.bar_ = None

    def __repr__(self):
        return f"{type(self).__name__}(total={self.total!r}, desc={self.desc!r})"
