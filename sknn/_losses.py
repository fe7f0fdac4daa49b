"""scikit-learn's regression losses as torch criteria.

Each returns one loss per sample (``reduction='none'`` in skorch's
``criterion__reduction``), which :class:`sknn._net.SknnNet`'s ``get_loss``
averages with the sample weights, as scikit-learn's ``squared_loss`` and
``poisson_loss`` (``sklearn.neural_network._base``) do.
"""

import torch
import torch.nn.functional as F


class HalfSquaredError(torch.nn.Module):
    """``0.5 * (y_pred - y) ** 2`` summed over the outputs, per sample.

    scikit-learn's gradient is that of this sum (its output error is
    ``y_pred - y`` for every output), while the loss it reports,
    ``squared_loss``, is ``0.5 * np.average((y - p) ** 2, weights=w,
    axis=0).mean()``: averaged over the outputs. sknn trains on the sum, so
    that its steps are scikit-learn's, and its net reports the loss divided by
    the number of outputs (``SknnRegressorNet``'s ``loss_scale``).
    """

    def __init__(self, reduction="none"):
        super().__init__()
        self.reduction = reduction

    def forward(self, y_pred, y_true):
        per_sample = 0.5 * (y_pred - y_true).pow(2).sum(dim=1)
        return _reduce(per_sample, self.reduction)


class HalfPoissonDeviance(torch.nn.Module):
    """Half the Poisson deviance with a log link, summed over the outputs.

    The network's output ``z`` is the log of the prediction (scikit-learn's
    ``out_activation_='exp'``); per sample and output the loss is
    ``exp(z) - y * z + xlogy(y, y) - y``, which is scikit-learn's
    ``poisson_loss`` ``xlogy(y, y / exp(z)) - y + exp(z)``, computed from ``z``
    so that it stays finite where ``exp(z)`` underflows. scikit-learn sums it
    over the outputs.
    """

    def __init__(self, reduction="none"):
        super().__init__()
        self.reduction = reduction

    def forward(self, y_pred, y_true):
        deviance = (torch.exp(y_pred) - y_true * y_pred
                    + torch.xlogy(y_true, y_true) - y_true)
        return _reduce(deviance.sum(dim=1), self.reduction)


def _reduce(per_sample, reduction):
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean()


def identity(y):
    """The identity output activation (predictions are the outputs)."""
    return y



def unweighted_mean(criterion, y_pred, y_true):
    """The mean over the samples of ``criterion``'s per-sample loss (summed
    over the outputs) in torch's one reducing op where there is one, else
    None.

    Fewer ops, forward and backward, on every batch of an unweighted fit:
    with one output, ``0.5 * mse_loss`` is :class:`HalfSquaredError`'s mean
    to the bit, value and gradient (measured: 120 us against 168 us a
    200-row batch). ``cross_entropy``'s own mean would save as much for a
    classifier, but it differs from the per-sample losses' mean in the last
    bits, and float32 L-BFGS fits amplify that (a weighted and a repeated-rows
    fit then ended 0.11 apart in probability instead of 0.02): not taken.
    """
    if (type(criterion) is HalfSquaredError and y_pred.dim() == 2
            and y_pred.shape[1] == 1 and y_true.shape == y_pred.shape):
        return 0.5 * F.mse_loss(y_pred, y_true)
    return None


__all__ = ["HalfPoissonDeviance", "HalfSquaredError", "identity"]
