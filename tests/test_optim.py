"""sknn._optim: torch's fused Adam and SGD with a short step give torch's
weights and state, bit for bit, and fall back to torch's step wherever the
short one does not apply."""

import numpy as np
import pytest
import torch

from sknn import MLPClassifierTorch, MLPRegressorTorch, _optim
from sknn._callbacks import set_lr


def _params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(20, 5), (20,), (3, 20), (3,)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]


def _groups(params, **extra):
    weights, biases = params[0::2], params[1::2]
    return [{"params": weights, "weight_decay": 1e-3, **extra},
            {"params": biases, "weight_decay": 0.0}]


def _train(optimizer, params, steps=12, seed=1, on_step=None):
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        if on_step is not None:
            on_step(i, optimizer)
        optimizer.step()


def _same(a_params, b_params, a_opt, b_opt):
    for a, b in zip(a_params, b_params):
        assert torch.equal(a, b)
    a_state, b_state = a_opt.state_dict()["state"], b_opt.state_dict()["state"]
    assert a_state.keys() == b_state.keys()
    for key in a_state:
        assert a_state[key].keys() == b_state[key].keys()
        for name in a_state[key]:
            assert torch.equal(a_state[key][name], b_state[key][name]), name


def _short_steps(monkeypatch):
    """Count the steps torch's own step takes."""
    calls = []
    torch_step = _optim._torch_step

    def counted(cls, optimizer, closure):
        calls.append(cls)
        return torch_step(cls, optimizer, closure)

    monkeypatch.setattr(_optim, "_torch_step", counted)
    return calls


def _change_lr(i, optimizer):
    if i == 6:
        set_lr(optimizer, optimizer.param_groups[0]["lr"] / 5)


@pytest.mark.parametrize("solver, kwargs", [
    ("adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-7}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05}),
])
def test_short_step_gives_torchs_weights_and_state(monkeypatch, solver, kwargs):
    ours_cls, torch_cls = {"adam": (_optim.Adam, torch.optim.Adam),
                           "sgd": (_optim.SGD, torch.optim.SGD)}[solver]
    calls = _short_steps(monkeypatch)
    a, b = _params(), _params()
    ours = ours_cls(_groups(a), fused=True, **kwargs)
    theirs = torch_cls(_groups(b), fused=True, **kwargs)
    _train(ours, a, on_step=_change_lr)
    _train(theirs, b, on_step=_change_lr)
    _same(a, b, ours, theirs)
    # torch's step made the state; every later step was the short one
    first = 0 if solver == "sgd" and "momentum" not in kwargs else 1
    assert len(calls) == first


def test_loaded_state_continues_as_torchs(monkeypatch):
    a, b = _params(), _params()
    ours = _optim.Adam(_groups(a), lr=1e-2, fused=True)
    theirs = torch.optim.Adam(_groups(b), lr=1e-2, fused=True)
    _train(ours, a, steps=5)
    _train(theirs, b, steps=5)
    # a new optimizer from the saved state: the short step reads the loaded
    # tensors (load_state_dict replaces them), not stale ones
    c = [torch.nn.Parameter(p.detach().clone()) for p in a]
    again = _optim.Adam(_groups(c), lr=1e-2, fused=True)
    again.load_state_dict(ours.state_dict())
    calls = _short_steps(monkeypatch)
    _train(again, c, steps=5, seed=2)
    _train(theirs, b, steps=5, seed=2)
    _same(c, b, again, theirs)
    assert calls == []


def test_hooks_closures_and_scalers_take_torchs_step_once(monkeypatch):
    params = _params()
    opt = _optim.Adam(_groups(params), lr=1e-2, fused=True)
    seen = []
    handle = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    calls = _short_steps(monkeypatch)
    _train(opt, params, steps=3)
    assert seen == ["pre"] * 3 and len(calls) == 3   # hooks run once a step
    handle.remove()
    _train(opt, params, steps=2)
    assert len(calls) == 3
    loss = opt.step(lambda: torch.tensor(1.5))
    assert float(loss) == 1.5 and len(calls) == 4
    opt.grad_scale = torch.tensor(1.0)  # what torch's GradScaler sets
    _train(opt, params, steps=1)
    assert len(calls) == 5


def test_sparse_or_tensor_settings_take_torchs_step(monkeypatch):
    calls = _short_steps(monkeypatch)
    params = _params()
    opt = _optim.Adam(params, lr=torch.tensor(1e-2), fused=True)
    _train(opt, params, steps=3)
    assert len(calls) == 3
    params = _params()
    opt = _optim.SGD(params, lr=0.1, momentum=0.5, fused=True)
    _train(opt, params, steps=2)
    params[0].grad = params[0].grad.to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):  # torch's own error
        opt.step()


@pytest.mark.parametrize("estimator, solver", [
    (MLPRegressorTorch, "adam"), (MLPClassifierTorch, "sgd")])
def test_fit_with_the_short_step_is_the_fit_with_torchs(monkeypatch, estimator,
                                                         solver):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 6))
    y = X[:, 0] - X[:, 1] if estimator is MLPRegressorTorch else X[:, 0] > 0
    params = dict(hidden_layer_sizes=(16, 8), max_iter=8, batch_size=32,
                  solver=solver, learning_rate="adaptive", random_state=0,
                  device="cpu")
    short = estimator(**params).fit(X, y)
    assert type(short.net_.optimizer_).__module__ == "sknn._optim"
    for cls in (_optim.Adam, _optim.SGD):
        base = cls.__mro__[1]
        monkeypatch.setattr(cls, "step", lambda self, closure=None, base=base:
                            _optim._torch_step(base, self, closure))
    plain = estimator(**params).fit(X, y)
    for a, b in zip(short.coefs_ + short.intercepts_,
                    plain.coefs_ + plain.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert short.loss_curve_ == plain.loss_curve_
