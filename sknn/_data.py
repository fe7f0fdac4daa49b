"""The path of the data: validated arrays -> tensors on the device, once -> batches.

Training never goes through a per-item ``Dataset.__getitem__``/``collate`` path:
the whole training set is moved to the device once (a :class:`TensorDataset`,
which is what skorch receives as X) and each batch is a slice of a per-epoch
permutation (:class:`BatchIterator`, skorch's ``iterator_train`` and
``iterator_valid``), so an epoch costs a handful of tensor ops per batch and
nothing per sample.

A batch is ``(X_batch, y_batch)``; when samples carry weights it is
``({"X": X_batch, "sample_weight": w_batch}, y_batch)``, skorch's documented
form for sample weights, so that ``y_batch`` stays a plain target tensor for
every scoring callback.
"""

import numpy as np
import torch


def as_float32_tensor(X, device):
    """A C-contiguous float32 tensor on ``device`` holding a copy-if-needed of X.

    Read-only inputs (memory maps, for instance) are copied so that torch never
    shares memory it may not write to.
    """
    X = np.asarray(X)
    if X.dtype != np.float32 or not X.flags.c_contiguous or not X.flags.writeable:
        X = np.array(X, dtype=np.float32, order="C")
    tensor = torch.from_numpy(X)
    # .to() parses the device on every call: a cost on the 1-row predict path
    return tensor if device == "cpu" else tensor.to(device)


def as_target_tensor(y, device):
    """Encoded targets (int64 indices or a float32 matrix) as a tensor."""
    y = np.asarray(y)
    if not y.flags.writeable or not y.flags.c_contiguous:
        y = np.array(y, order="C")
    return torch.from_numpy(y).to(device)


class TensorDataset(torch.utils.data.Dataset):
    """X, y and optional per-sample weights held as device tensors.

    It is a real torch ``Dataset`` with skorch's ``X`` and ``y`` attributes, so
    skorch and its callbacks recognise it, but training reads it through
    :class:`BatchIterator`, never item by item.
    """

    def __init__(self, X, y=None, weight=None):
        self.X = X
        self.y = y
        self.weight = weight

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.batch(i)

    def batch(self, index):
        """``(X[index], y[index])``, with the weights beside X when weighted.

        ``index`` is a slice or a LongTensor of row numbers; rows of a
        contiguous tensor are gathered with ``index_select``, the same rows as
        ``X[index]`` at a third of the cost for a small batch (13 us against
        41 us for 200 x 64). Indexing keeps a channels-last layout, which
        ``index_select`` would not.
        """
        if isinstance(index, torch.Tensor):
            def take(t):
                return t.index_select(0, index) if t.is_contiguous() else t[index]
        else:
            def take(t):
                return t[index]
        X = take(self.X)
        if self.weight is not None:
            X = {"X": X, "sample_weight": take(self.weight)}
        return X, None if self.y is None else take(self.y)

    def subset(self, index):
        """The rows ``index`` (a LongTensor) as a new dataset."""
        weight = None if self.weight is None else self.weight[index]
        return TensorDataset(self.X[index], self.y[index], weight)


class BatchIterator:
    """Yield the batches of a :class:`TensorDataset` as slices.

    skorch calls it as ``iterator_train(dataset, batch_size=..., **params)``,
    like a ``DataLoader``; any other dataset (skorch's own, when a user calls
    ``net_.predict(array)``) goes through a plain ``DataLoader``.

    Parameters
    ----------
    dataset : TensorDataset
    batch_size : int
    shuffle : bool, default=False
        Draw a new permutation each epoch (each call to ``iter``).
    generator : torch.Generator or None, default=None
        Source of the permutations, so shuffling is reproducible.
    transform : callable or None, default=None
        Applied to each X batch (training-time augmentation).
    merge_single : bool, default=False
        A last batch of one sample joins the batch before it (batch
        normalization cannot train on one sample). The permutation is the
        same; only the last two slices become one.
    """

    def __init__(self, dataset, batch_size, shuffle=False, generator=None,
                 transform=None, merge_single=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform
        self.merge_single = merge_single

    def _starts(self, n):
        """The first row of each batch, and ``n``."""
        starts = list(range(0, n, self.batch_size))
        if self.merge_single and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        return starts + [n]

    def __len__(self):
        if self.merge_single:
            return len(self._starts(len(self.dataset))) - 1
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        data = self.dataset
        if not isinstance(data, TensorDataset):
            yield from torch.utils.data.DataLoader(data, self.batch_size,
                                                   shuffle=self.shuffle)
            return
        n = len(data)
        perm = None
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(data.X.device)
        starts = self._starts(n)
        for start, stop in zip(starts[:-1], starts[1:]):
            index = slice(start, stop) if perm is None else perm[start:stop]
            Xb, yb = data.batch(index)
            if self.transform is not None:
                if isinstance(Xb, dict):
                    Xb["X"] = self.transform(Xb["X"])
                else:
                    Xb = self.transform(Xb)
            yield Xb, yb
