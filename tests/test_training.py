"""The training engine itself: batches, the loss accumulated per epoch, the L2
term, device paths (faked on the CPU), the Ctrl-C watch, and the seam (a
frozen configuration in, a result out)."""

import copy
import dataclasses
import signal
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

from sknn import MLPClassifierTorch, _net, _training
from sknn._data import BatchIterator, TensorDataset


def _data(n=10, n_features=3, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    return X, np.arange(n) % n_classes


# ------------------------------------------------------------------ batches
def _dataset(n):
    return TensorDataset(torch.arange(n, dtype=torch.float32).reshape(-1, 1),
                         torch.arange(n))


@pytest.mark.parametrize("n, batch_size, merge, sizes", [
    (10, 4, False, [4, 4, 2]),
    (9, 4, False, [4, 4, 1]),
    (9, 4, True, [4, 5]),  # a last batch of one joins the previous one
    (1, 4, True, [1]),  # nothing to join
    (8, 4, True, [4, 4]),
])
def test_batches_and_their_sizes(n, batch_size, merge, sizes):
    it = BatchIterator(_dataset(n), batch_size, merge_single=merge)
    batches = list(it)
    assert [len(yb) for _, yb in batches] == sizes == [len(xb) for xb, _ in batches]
    assert len(it) == len(sizes)
    assert torch.equal(torch.cat([yb for _, yb in batches]), torch.arange(n))


def test_shuffled_batches_follow_the_generator_permutation():
    it = BatchIterator(_dataset(9), 4, shuffle=True, merge_single=True,
                       generator=torch.Generator().manual_seed(3))
    order = torch.cat([yb for _, yb in it])
    expected = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(order, expected)
    second = torch.cat([yb for _, yb in it])  # a new permutation per epoch
    assert not torch.equal(second, order)


def test_weighted_batches_carry_their_weights_beside_X():
    data = TensorDataset(torch.zeros(5, 2), torch.arange(5),
                         torch.arange(5, dtype=torch.float32))
    (xb, yb), = list(BatchIterator(data, 5))
    assert set(xb) == {"X", "sample_weight"}
    assert torch.equal(xb["sample_weight"], torch.arange(5, dtype=torch.float32))


# ------------------------------------------------- loss, L2 term, accuracy
class InitialState(Callback):
    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


def test_epoch_loss_l2_term_and_accuracy_equal_a_hand_computation():
    X, y = _data()
    lr, alpha, batch_size = 0.1, 0.5, 4
    clf = MLPClassifierTorch(
        (5,), solver="sgd", momentum=0.0, learning_rate_init=lr, alpha=alpha,
        batch_size=batch_size, shuffle=False, max_iter=1, random_state=0,
        device="cpu", callbacks=[InitialState()])
    clf.fit(X, y)

    module = copy.deepcopy(clf.net_.module_)
    module.load_state_dict(dict(clf.net_.callbacks_)["InitialState"].state_)
    weights = [layer.weight for layer in module.linear_layers()]
    l2_coef = alpha / batch_size  # the sample weight of a full batch
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    weighted_sum, correct = 0.0, 0
    for start in range(0, len(X), batch_size):
        xb, yb = Xt[start:start + batch_size], yt[start:start + batch_size]
        out = module(xb)
        loss = torch.nn.functional.cross_entropy(out, yb)
        weighted_sum += float(loss.detach()) * len(xb)
        correct += int((out.argmax(dim=1) == yb).sum())
        module.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in module.parameters():
                decay = l2_coef * p if any(p is w for w in weights) else 0.0
                p -= lr * (p.grad + decay)
    with torch.no_grad():
        penalty = 0.5 * l2_coef * float(sum((w ** 2).sum() for w in weights))

    assert clf.loss_curve_[0] == pytest.approx(weighted_sum / len(X) + penalty,
                                               rel=1e-6)
    assert penalty > 0.01 * clf.loss_curve_[0]  # the L2 term is really in it
    assert clf.history_[0]["accuracy"] == correct / len(X)
    assert clf.t_ == len(X)
    for ours, theirs in zip(clf.net_.module_.parameters(), module.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_skorch_history_keys_are_intact():
    X, y = _data(40)
    clf = MLPClassifierTorch((4,), max_iter=2, batch_size=16, random_state=0,
                             device="cpu", early_stopping=True,
                             validation_fraction=0.25).fit(X, y)
    row = clf.net_.history[-1]
    for key in ("epoch", "dur", "train_loss", "train_batch_count", "valid_loss",
                "valid_acc", "valid_batch_count", "train_acc", "train_samples"):
        assert key in row, key
    train = [b for b in row["batches"] if "train_loss" in b]
    assert [b["train_batch_size"] for b in train] == [16, 14]
    assert row["train_batch_count"] == 2 and row["train_samples"] == 30
    # skorch's train_loss: the batch losses weighted by their sizes
    expected = sum(b["train_loss"] * b["train_batch_size"] for b in train) / 30
    assert row["train_loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weight, expected", [
    (None, 0.1 / 20),
    (np.full(8, 2.0), 0.1 / 40),
    (np.array([1.0, -1.0] * 4), 0.1 / 20),  # mean zero: the mean |weight|
])
def test_l2_coefficient_is_alpha_over_the_weight_of_a_full_batch(weight, expected):
    assert _training.l2_coefficient(0.1, 20, weight) == pytest.approx(expected)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_counts_its_parameters_as_built(batch_norm):
    est = MLPClassifierTorch((7, 5), batch_norm=batch_norm)
    module = est._build_module(4, 3)
    assert est._n_parameters(4, 3) == sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------ device paths
def test_device_test_tells_tensors_on_the_training_device():
    x = torch.zeros(2)
    assert _net._device_test(torch.device("cpu"))(x)
    assert not _net._device_test(torch.device("cuda"))(x)
    assert not _net._device_test(torch.device("cuda:1"))(x)
    assert not _net._device_test(torch.device("cpu"))(np.zeros(2))
    meta = torch.zeros(2, device="meta")  # a tensor off the CPU
    assert _net._device_test(torch.device("meta"))(meta)
    assert not _net._device_test(torch.device("cpu"))(meta)


def test_gpu_memory_bounds_the_network_size(monkeypatch):
    # a faked 1 MiB GPU: the network is refused from its parameter count
    # before anything is allocated on it
    props = type("Props", (), {"total_memory": 2**20})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    assert _training._memory_bytes("cuda:0") == 2**20
    config = dataclasses.replace(
        _config(MLPClassifierTorch((100_000,)), n_features=64), device="cuda")
    with pytest.raises(ValueError, match=r"1\.0 MiB of memory of the cuda device"):
        _training.check_network_size(config)


def test_fused_optimizers_only_where_torch_has_the_kernels():
    assert _training._fused_ok("cpu") and _training._fused_ok("cuda:1")
    assert not _training._fused_ok("mps")
    config = _config(MLPClassifierTorch(solver="sgd"), n_features=3)
    policy = _training.optimizer_policy(dataclasses.replace(config, device="mps"),
                                        0.1)
    assert "optimizer__fused" not in policy
    assert policy["optimizer__param_groups"][0][1] == {"weight_decay": 0.1}


def test_non_cpu_input_tensors_are_moved_to_the_device(monkeypatch):
    moved = []
    monkeypatch.setattr(torch.Tensor, "to",
                        lambda self, device: moved.append(device) or self)
    MLPClassifierTorch()._input_tensor(np.zeros((2, 3)), "cuda")
    assert moved == ["cuda"]
    moved.clear()
    MLPClassifierTorch()._input_tensor(np.zeros((2, 3)), "cpu")
    assert moved == []  # the 1-row predict path parses no device


# ----------------------------------------------------------------- Ctrl-C
def test_ctrl_c_watch_gives_sigint_back_after_a_failed_fit():
    class Fails(Callback):
        def on_batch_end(self, net, **kwargs):
            raise RuntimeError("boom")

    before = signal.getsignal(signal.SIGINT)
    X, y = _data()
    with pytest.raises(RuntimeError, match="boom"):
        MLPClassifierTorch((3,), max_iter=2, device="cpu",
                           callbacks=[Fails()]).fit(X, y)
    assert signal.getsignal(signal.SIGINT) is before


def test_net_keeps_no_training_state_after_fit():
    X, y = _data()
    clf = MLPClassifierTorch((3,), max_iter=2, device="cpu").fit(
        X, y, sample_weight=np.linspace(1, 2, len(X)))
    net = clf.net_
    assert net.train_split is None and net.iterator_train__generator is None
    assert "_train_weight" not in vars(net) and "_predicted" not in vars(net)
    assert "_trained_params" not in vars(net)
    assert dict(net.callbacks_)["ctrl_c"]._previous is None


# ---------------------------------------------------------------- the seam
def _config(est, n_features, **changes):
    from sknn._targets import TargetEncoder

    est.target_encoder_ = TargetEncoder().fit([0, 1, 2])
    est.device_ = "cpu"
    return dataclasses.replace(est._fit_config(n_features), **changes)


def test_fit_takes_a_frozen_config_and_returns_a_result():
    X, y = _data(30)
    built = []

    def build_module(n_features, n_outputs):
        built.append((n_features, n_outputs))
        return torch.nn.Sequential(torch.nn.Linear(n_features, n_outputs))

    # no estimator anywhere: the hooks are plain functions
    config = _training.FitConfig(
        build_module=build_module,
        input_tensor=lambda X, device: torch.as_tensor(X, dtype=torch.float32),
        n_features=3, n_outputs=3, max_iter=2, seed=0, device="cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_iter = 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # training emits nothing itself
        result = _training.fit(config, X, y.astype(np.int64), None)
    assert isinstance(result.net, _net.SknnNet)
    assert built == [(3, 3), (3, 3)]  # the size check on 'meta', then the net
    assert set(result.attributes) == {
        "n_iter_", "loss_curve_", "loss_", "t_", "best_loss_",
        "validation_scores_", "best_validation_score_", "history_"}
    assert result.attributes["n_iter_"] == 2 and result.attributes["t_"] == 60
    assert [category for _, category in result.warnings] == [ConvergenceWarning]


def test_the_estimator_assigns_every_fitted_attribute_of_the_result(monkeypatch):
    captured = []
    real_fit = _training.fit

    def spy(config, *args, **kwargs):
        captured.append(config)
        result = real_fit(config, *args, **kwargs)
        captured.append(result)
        return result

    monkeypatch.setattr(_training, "fit", spy)
    X, y = _data(30)
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifierTorch((3,), max_iter=2, random_state=4,
                                 device="cpu").fit(X, y)
    config, result = captured
    assert isinstance(config, _training.FitConfig)
    assert config.max_iter == 2 and config.device == "cpu"
    # the seed is drawn first from random_state, as the fused search expects
    assert config.seed == np.random.RandomState(4).randint(_training.MAX_SEED)
    assert clf.net_ is result.net
    for name, value in result.attributes.items():
        assert getattr(clf, name) is value


def test_optimizer_policy_of_a_fitted_estimator_is_that_of_its_config():
    # sknn._fused passes the estimator itself
    X, y = _data(30)
    clf = MLPClassifierTorch((3,), solver="sgd", momentum=0.5, max_iter=1,
                             device="cpu").fit(X, y)
    policy = _training.optimizer_policy(clf, 0.1)
    assert policy == _training.optimizer_policy(clf._fit_config(3), 0.1)
    assert policy["optimizer__momentum"] == 0.5


def test_batch_size_resolves_as_sklearn():
    assert MLPClassifierTorch()._batch_size(150) == 150
    assert MLPClassifierTorch()._batch_size(1000) == 200
    with pytest.warns(UserWarning, match="going to be clipped"):
        assert MLPClassifierTorch(batch_size=500)._batch_size(100) == 100


def test_derived_attributes_are_not_pickled_and_come_back():
    import pickle

    from sknn._base import DERIVED_ATTRIBUTES

    X, y = _data(30)
    clf = MLPClassifierTorch((3,), max_iter=2, device="cpu").fit(X, y)
    assert set(DERIVED_ATTRIBUTES) <= set(vars(clf))
    assert not set(DERIVED_ATTRIBUTES) & set(clf.__getstate__())
    loaded = pickle.loads(pickle.dumps(clf))
    for name in DERIVED_ATTRIBUTES:
        np.testing.assert_equal(getattr(loaded, name), getattr(clf, name))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fits_in_threads_are_the_fits_made_one_by_one(dropout):
    # torch's global RNG is one per process: fits in threads (joblib's
    # threading backend) must not draw from each other's seeded streams
    from concurrent.futures import ThreadPoolExecutor

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)

    def fit(seed):
        return MLPClassifierTorch(hidden_layer_sizes=(32,), max_iter=5,
                                  dropout=dropout, random_state=seed,
                                  device="cpu").fit(X, y).coefs_

    alone = [fit(seed) for seed in range(6)]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(fit, range(6)))
    for a, b in zip(alone, threaded):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)
