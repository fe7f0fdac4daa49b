"""Stacked ("horizontally fused") MLPs and their optimizers.

M networks of the same shape are held as one tensor per layer: weights of
shape ``(M, in, out)`` (each the transpose of a ``Linear`` layer's weight) and
biases ``(M, 1, out)``. A forward pass is one ``torch.baddbmm`` per layer for
all M networks. The optimizers step every network at once with per-network
hyperparameters held as ``(M, 1, 1)`` tensors (learning rate, betas, epsilon,
momentum, L2 coefficient), and with a mask for the networks that take no step
on a batch (a fold with fewer batches in its epoch). Their arithmetic is
torch's ``Adam`` and ``SGD`` (``weight_decay`` as the L2 term, torch's momentum
buffer, Nesterov), so a stacked network takes the steps its single fit takes.
The per-sample losses are those of sknn's nets: the classifiers' log-losses
and the regressor's criteria (``sknn._losses``).
"""

import torch
import torch.nn.functional as F

from sknn._losses import HalfPoissonDeviance, HalfSquaredError

#: activation name -> elementwise function (sknn._modules.ACTIVATIONS' maths)
ACTIVATIONS = {
    "identity": lambda h: h,
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}


def per_model(values, device):
    """A list of M floats as an ``(M, 1, 1)`` float32 tensor."""
    return torch.tensor(values, dtype=torch.float32, device=device).reshape(-1, 1, 1)


class StackedMLP:
    """The parameters of M same-shaped MLPs and their forward pass.

    Parameters
    ----------
    layers : list of list of (weight, bias)
        For each network, its ``Linear`` layers' ``(weight, bias)`` tensors in
        torch's layout, ``weight`` of shape ``(out, in)``.
    activation : str
        Hidden-layer activation name.
    device : torch.device
    """

    def __init__(self, layers, activation, device):
        self.activation = ACTIVATIONS[activation]
        self.params = []
        for i in range(len(layers[0])):
            W = torch.stack([net[i][0].detach().T for net in layers]).to(device)
            b = torch.stack([net[i][1].detach().reshape(1, -1) for net in layers])
            self.params += [W.contiguous().requires_grad_(),
                            b.to(device).contiguous().requires_grad_()]

    @property
    def weights(self):
        return self.params[0::2]

    def forward(self, X):
        """Logits ``(M, B, n_outputs)`` of inputs ``X`` of shape ``(M, B, F)``."""
        h = X
        n = len(self.params) // 2
        for i in range(n):
            h = torch.baddbmm(self.params[2 * i + 1], h, self.params[2 * i])
            if i < n - 1:
                h = self.activation(h)
        return h

    def forward_one(self, m, X):
        """Logits of network ``m`` for ``X`` of shape ``(B, F)``."""
        h = X
        n = len(self.params) // 2
        for i in range(n):
            h = torch.addmm(self.params[2 * i + 1][m], h, self.params[2 * i][m])
            if i < n - 1:
                h = self.activation(h)
        return h

    def squared_norms(self):
        """``sum ||W||^2`` over the weights (not biases), per network: (M,)."""
        with torch.no_grad():
            return sum(W.pow(2).sum(dim=(1, 2)) for W in self.weights)

    def state(self, m):
        """Network ``m``'s tensors in torch's layout, on the CPU:
        ``[(weight (out, in), bias (out,)), ...]``."""
        out = []
        for W, b in zip(self.params[0::2], self.params[1::2]):
            out.append((W[m].detach().T.cpu().clone(), b[m, 0].detach().cpu().clone()))
        return out

    def set_state(self, m, state):
        with torch.no_grad():
            for (W, b), (w, bias) in zip(zip(self.params[0::2], self.params[1::2]),
                                         state):
                W[m].copy_(w.T)
                b[m, 0].copy_(bias)

    def select(self, keep):
        """Keep only the networks ``keep`` (a LongTensor of indices)."""
        self.params = [p.detach().index_select(0, keep).requires_grad_()
                       for p in self.params]


class _StackedOptimizer:
    """Shared bookkeeping: per-network learning rates and L2 coefficients, a
    step count, and the selection of surviving networks."""

    #: per-network state tensors, one per parameter, by name
    _slots = ()
    #: per-network (M, 1, 1) hyperparameters by name
    _hyper = ("lr", "l2")

    def __init__(self, model, lr, l2, device):
        self.model = model
        self.device = device
        self.lr = per_model(lr, device)
        self.l2 = per_model(l2, device)
        self.step_count = torch.zeros_like(self.lr)
        self.state = {slot: [torch.zeros_like(p) for p in model.params]
                      for slot in self._slots}

    def step(self, grads, active=None):
        """One step of every network; ``active`` is an (M, 1, 1) bool mask of
        the networks that take it (None: all). ``grads`` are consumed."""
        with torch.no_grad():
            self.step_count += 1 if active is None else active.float()
            self._prepare_step()
            for i, (p, g) in enumerate(zip(self.model.params, grads)):
                if i % 2 == 0:  # L2 as weight decay on the weights, not biases
                    g.addcmul_(p, self.l2)
                self._update(i, p, g, active)

    def _prepare_step(self):
        """Per-network factors shared by every tensor of this step."""

    def set_lr(self, m, lr):
        self.lr[m] = lr

    def select(self, keep):
        for name in self._hyper:
            setattr(self, name, getattr(self, name).index_select(0, keep))
        self.step_count = self.step_count.index_select(0, keep)
        for slot, tensors in self.state.items():
            self.state[slot] = [t.index_select(0, keep) for t in tensors]


def _fused_kernels(device):
    """Whether torch's fused Adam kernel runs on ``device`` (torch >= 2.4)."""
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4) and torch.device(device).type in ("cpu", "cuda")


def _put(target, value, active):
    if active is None:
        target.copy_(value)
    else:
        target.copy_(torch.where(active, value, target))


class StackedAdam(_StackedOptimizer):
    """torch's ``Adam`` (L2 as ``weight_decay``, no amsgrad) for M networks."""

    _slots = ("exp_avg", "exp_avg_sq")
    _hyper = ("lr", "l2", "beta1", "beta2", "eps")

    def __init__(self, model, lr, l2, beta1, beta2, eps, device):
        super().__init__(model, lr, l2, device)
        self.beta1 = per_model(beta1, device)
        self.beta2 = per_model(beta2, device)
        self.eps = per_model(eps, device)
        self.fused = _fused_kernels(device)
        self._group()

    def _group(self):
        """Each network's (lr, beta1, beta2, eps), for torch's fused kernel,
        which takes them as scalars."""
        self.hyper = [tuple(float(t[m]) for t in (self.lr, self.beta1, self.beta2,
                                                  self.eps))
                      for m in range(len(self.lr))]

    def step(self, grads, active=None):
        """With torch's fused Adam kernel: the L2 term is added to the
        gradients of all networks at once, then one kernel call steps every
        network when they share their hyperparameters and step count (then
        on the whole stacked tensors), else one call per group of networks
        that do (on per-network views)."""
        if not self.fused:
            return super().step(grads, active)
        from torch.optim.adam import adam

        params, state = self.model.params, self.state
        with torch.no_grad():
            for i in range(0, len(grads), 2):
                grads[i].addcmul_(params[i], self.l2)
            self.step_count += 1 if active is None else active.float()
            steps = self.step_count.reshape(-1).tolist()
            on = [True] * len(steps) if active is None else active.reshape(-1).tolist()
            groups = {}
            for m, (hyper, step) in enumerate(zip(self.hyper, steps)):
                if on[m]:
                    groups.setdefault((hyper, step), []).append(m)
            whole = len(groups) == 1 and all(on)
            for ((lr, b1, b2, eps), step), members in groups.items():
                tensors = (params, grads, state["exp_avg"], state["exp_avg_sq"])
                if whole:
                    lists = [list(t) for t in tensors]
                else:
                    lists = [[t[i][m] for i in range(len(params)) for m in members]
                             for t in tensors]
                counts = [torch.tensor(step - 1.0) for _ in lists[0]]
                adam(*lists, [], counts, fused=True, amsgrad=False, beta1=b1,
                     beta2=b2, lr=lr, weight_decay=0.0, eps=eps, maximize=False)

    def select(self, keep):
        super().select(keep)
        self._group()

    def _prepare_step(self):
        self._bc2_sqrt = (1 - self.beta2 ** self.step_count).sqrt()
        self._step_size = self.lr / (1 - self.beta1 ** self.step_count)
        self._one_minus_b1 = 1 - self.beta1
        self._one_minus_b2 = 1 - self.beta2

    def _update(self, i, p, g, active):
        m = self.state["exp_avg"][i]
        v = self.state["exp_avg_sq"][i]
        if active is not None:
            m_old, v_old, p_old = m.clone(), v.clone(), p.detach().clone()
        m.mul_(self.beta1).addcmul_(g, self._one_minus_b1)
        v.mul_(self.beta2).addcmul_(g.mul_(g), self._one_minus_b2)
        denom = v.sqrt().div_(self._bc2_sqrt).add_(self.eps)
        p.sub_(denom.reciprocal_().mul_(m).mul_(self._step_size))
        if active is not None:
            for new, old in ((m, m_old), (v, v_old), (p, p_old)):
                new.copy_(torch.where(active, new, old))


class StackedSGD(_StackedOptimizer):
    """torch's ``SGD`` (momentum buffer, Nesterov, L2 as ``weight_decay``) for
    M networks; a momentum of 0 steps by the gradient alone, as torch's."""

    _slots = ("momentum_buffer",)
    _hyper = ("lr", "l2", "momentum", "nesterov")

    def __init__(self, model, lr, l2, momentum, nesterov, device):
        super().__init__(model, lr, l2, device)
        self.momentum = per_model(momentum, device)
        self.nesterov = per_model(nesterov, device) > 0

    def step(self, grads, active=None):
        self._first = self.step_count == 0
        super().step(grads, active)

    def _prepare_step(self):
        self._all_later = not bool(self._first.any())

    def _update(self, i, p, d, active):
        buf = self.state["momentum_buffer"][i]
        if self._all_later:
            buf_new = (self.momentum * buf).add_(d)
        else:
            buf_new = torch.where(self._first, d, self.momentum * buf + d)
        direction = torch.where(self.nesterov, d + self.momentum * buf_new, buf_new)
        _put(buf, buf_new, active)
        _put(p, p - self.lr * direction, active)

    def set_lr(self, m, lr):
        # sknn's set_lr: keep lr * buffer (scikit-learn's velocity) unchanged
        old = float(self.lr[m])
        if float(self.momentum[m]) and old != lr and lr > 0:
            for buf in self.state["momentum_buffer"]:
                buf[m].mul_(old / lr)
        self.lr[m] = lr


#: regression output -> its criterion, the single fit's (``sknn._losses``)
_REGRESSION_CRITERIA = {"continuous": HalfSquaredError(),
                        "poisson": HalfPoissonDeviance()}


def per_sample_loss(logits, y, kind):
    """scikit-learn's per-sample loss, ``(M, B)``, for the network output
    ``kind`` (``sknn._targets.KINDS``): softmax cross-entropy on class
    indices, binary cross-entropy summed over the outputs, or a regressor's
    half squared error or half Poisson deviance summed over the outputs (the
    criterion of its single fit, on the ``M * B`` rows)."""
    if kind == "multiclass":
        M, B, C = logits.shape
        return F.cross_entropy(logits.reshape(M * B, C), y.reshape(M * B),
                               reduction="none").reshape(M, B)
    if kind in _REGRESSION_CRITERIA:
        M, B, n_outputs = logits.shape
        rows = (M * B, n_outputs)
        return _REGRESSION_CRITERIA[kind](logits.reshape(rows),
                                          y.reshape(rows)).reshape(M, B)
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1)


def correct(logits, y, kind):
    """Whether each prediction is right, as a float tensor of shape ``(..., B)``."""
    if kind == "multiclass":
        return (logits.argmax(-1) == y).float()
    return ((logits > 0) == (y > 0.5)).all(-1).float()
