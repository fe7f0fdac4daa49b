"""The path of the data: validated arrays -> tensors on the device, once -> batches.

Training never goes through a per-item ``Dataset.__getitem__``/``collate`` path:
the whole training set is moved to the device once and each batch is a slice of
a per-epoch permutation, so an epoch costs a handful of tensor ops per batch and
nothing per sample.
"""

import numpy as np
import torch
from sklearn.utils.class_weight import compute_sample_weight


def as_float32_tensor(X, device):
    """A C-contiguous float32 tensor on ``device`` holding a copy-if-needed of X.

    Read-only inputs (memory maps, for instance) are copied so that torch never
    shares memory it may not write to.
    """
    X = np.asarray(X)
    if X.dtype != np.float32 or not X.flags.c_contiguous or not X.flags.writeable:
        X = np.array(X, dtype=np.float32, order="C")
    return torch.from_numpy(X).to(device)


def as_target_tensor(y, device):
    """Encoded targets (int64 indices or a float32 matrix) as a tensor."""
    y = np.asarray(y)
    if not y.flags.writeable or not y.flags.c_contiguous:
        y = np.array(y, order="C")
    return torch.from_numpy(y).to(device)


def combined_sample_weight(y_indices, sample_weight, class_weight):
    """Per-sample weights from ``sample_weight`` and ``class_weight``, or None
    when every sample weighs the same (so the loss can skip the weighting)."""
    weight = None
    if class_weight is not None:
        weight = compute_sample_weight(class_weight, y_indices)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        weight = sample_weight if weight is None else weight * sample_weight
    if weight is None or np.all(weight == weight.flat[0]) and weight.flat[0] > 0:
        return None
    return weight.astype(np.float32)


class TensorDataset(torch.utils.data.Dataset):
    """X, y and optional per-sample weights held as device tensors.

    It is a real torch ``Dataset`` (so skorch recognises it), but training reads
    it through :class:`BatchIterator`, never item by item.
    """

    def __init__(self, X, y=None, weight=None):
        self.X = X
        self.y = y
        self.weight = weight

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.target(i)

    def target(self, index):
        """The batch target: y[index], or (y[index], weight[index]) when weighted."""
        if self.y is None:
            return None
        if self.weight is None:
            return self.y[index]
        return self.y[index], self.weight[index]

    def subset(self, index):
        """The rows ``index`` (a LongTensor) as a new dataset."""
        weight = None if self.weight is None else self.weight[index]
        return TensorDataset(self.X[index], self.y[index], weight)


class BatchIterator:
    """Yield ``(X_batch, y_batch)`` slices of a :class:`TensorDataset`.

    Parameters
    ----------
    dataset : TensorDataset
    batch_size : int
    shuffle : bool
        Draw a new permutation each epoch (each call to ``iter``).
    generator : torch.Generator or None
        Source of the permutations, so shuffling is reproducible.
    transform : callable or None
        Applied to each X batch (training-time augmentation).
    """

    def __init__(self, dataset, batch_size, shuffle=False, generator=None,
                 transform=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        data = self.dataset
        n = len(data)
        bs = self.batch_size
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(data.X.device)
            for start in range(0, n, bs):
                index = perm[start:start + bs]
                Xb = data.X[index]
                if self.transform is not None:
                    Xb = self.transform(Xb)
                yield Xb, data.target(index)
        else:
            for start in range(0, n, bs):
                index = slice(start, start + bs)
                Xb = data.X[index]
                if self.transform is not None:
                    Xb = self.transform(Xb)
                yield Xb, data.target(index)
