"""skorch's stock callbacks in both estimators, each checked by its effect; the
callbacks that give skorch's loop scikit-learn's semantics; stopping versus a
real Ctrl-C; the progress bar."""

import os
import signal
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer
from skorch.callbacks import (
    BatchScoring,
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    Freezer,
    GradientNormClipping,
    Initializer,
    LoadInitState,
    LRScheduler,
    PassthroughScoring,
    PrintLog,
    ProgressBar,
    TensorBoard,
    TrainEndCheckpoint,
    Unfreezer,
)

from sknn import CNNClassifier, MLPClassifierTorch
from sknn._callbacks import NoImprovementStopping, set_lr

#: the first layer's parameters, by each estimator's layer names
FIRST_LAYER = {"mlp": "dense0.*", "cnn": "features.conv0.*"}


def _mlp(**params):
    return MLPClassifierTorch(hidden_layer_sizes=(16,), **params)


def _cnn(**params):
    return CNNClassifier(conv_filters=(4,), dense_layer_sizes=(8,), **params)


@pytest.fixture(params=["mlp", "cnn"])
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:200].astype(np.float32), y[:200]


def fit(kind, data, **params):
    """Fit a small estimator of ``kind`` (4 batches of 50 per epoch)."""
    params = {"max_iter": 4, "batch_size": 50, "random_state": 0, "device": "cpu",
              "learning_rate_init": 0.01, **params}
    clf = (_mlp if kind == "mlp" else _cnn)(**params)
    return clf.fit(*data)


def first_layer(clf, kind):
    """The first layer's weight, as a copy."""
    name = FIRST_LAYER[kind].replace("*", "weight")
    return clf.net_.module_.state_dict()[name].clone()


class Snapshot(Callback):
    """Copies the module's weights when training begins."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = {k: v.clone() for k, v in net.module_.state_dict().items()}


def lrs(clf):
    return [row["event_lr"] for row in clf.net_.history]


# ------------------------------------------------------- checkpoints, resume
def test_checkpoint_with_default_monitor_saves_at_best_valid_loss(kind, data,
                                                                   tmp_path):
    clf = fit(kind, data, early_stopping=True,
              callbacks=[Checkpoint(dirname=str(tmp_path))])
    history = clf.net_.history
    saved = [row["event_cp"] for row in history]
    assert saved == [row["valid_loss_best"] for row in history]
    assert (tmp_path / "params.pt").is_file()
    assert (tmp_path / "optimizer.pt").is_file()
    assert (tmp_path / "history.json").is_file()


def test_train_end_checkpoint_holds_the_final_weights(kind, data, tmp_path):
    clf = fit(kind, data, callbacks=[TrainEndCheckpoint(dirname=str(tmp_path))])
    saved = torch.load(tmp_path / "train_end_params.pt", weights_only=True)
    for name, tensor in clf.net_.module_.state_dict().items():
        torch.testing.assert_close(saved[name], tensor)


def test_load_init_state_resumes_from_a_checkpoint(kind, data, tmp_path):
    def callbacks():
        checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
        return [checkpoint, LoadInitState(checkpoint), Snapshot()]

    first = fit(kind, data, callbacks=callbacks())
    second = fit(kind, data, callbacks=callbacks(), random_state=1)
    start = dict(second.net_.callbacks_)["Snapshot"].state_
    name = FIRST_LAYER[kind].replace("*", "weight")
    # LoadInitState put the first fit's final weights in before training
    torch.testing.assert_close(start[name], first_layer(first, kind))
    assert second.n_iter_ == 4 and len(second.loss_curve_) == 8


# ------------------------------------------------------------- stopping
def test_early_stopping_on_valid_loss_stops_before_max_iter(kind, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither interrupted nor unconverged
        clf = fit(kind, data, max_iter=200, early_stopping=True,
                  n_iter_no_change=np.inf, learning_rate_init=0.05,
                  callbacks=[EarlyStopping(monitor="valid_loss", patience=2)])
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_


def test_early_stopping_on_train_loss_is_a_normal_stop(kind, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = fit(kind, data, max_iter=50, n_iter_no_change=np.inf,
                  callbacks=[EarlyStopping(monitor="train_loss", patience=2,
                                           threshold=0.5)])
    # it stopped after 2 epochs that did not halve the best loss
    assert clf.n_iter_ < 50
    assert dict(clf.net_.callbacks_)["EarlyStopping"].misses_ == 2


def test_a_callback_stop_is_not_an_interruption(data):
    class StopAtTwo(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise KeyboardInterrupt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = fit("mlp", data, max_iter=10, callbacks=[StopAtTwo()])
    assert clf.n_iter_ == 2


def test_ctrl_c_keeps_the_model_and_warns(data):
    class PressCtrlC(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                os.kill(os.getpid(), signal.SIGINT)

    clf = MLPClassifierTorch(max_iter=10, random_state=0, device="cpu",
                             callbacks=[PressCtrlC()])
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(*data)
    assert clf.n_iter_ == 2
    assert clf.predict(data[0]).shape == (200,)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -------------------------------------------------------- learning rates
def test_lr_scheduler_step_lr_halves_each_epoch(kind, data):
    clf = fit(kind, data, callbacks=[
        LRScheduler(policy="StepLR", step_size=1, gamma=0.5)])
    # skorch records the rate each epoch trained with, then steps it
    assert lrs(clf) == pytest.approx([0.01, 0.005, 0.0025, 0.00125])
    assert clf._optimizer.learning_rate == pytest.approx(0.000625)


def test_reduce_lr_on_plateau_reads_valid_loss(kind, data):
    # threshold 0.99: no epoch counts as better, so each one divides the rate
    clf = fit(kind, data, early_stopping=True, callbacks=[
        LRScheduler(policy="ReduceLROnPlateau", monitor="valid_loss",
                    patience=0, factor=0.1, threshold=0.99)])
    assert lrs(clf)[-1] < 0.01 * 0.1 ** 2


def test_cosine_annealing_reaches_its_minimum(kind, data):
    clf = fit(kind, data, callbacks=[
        LRScheduler(policy="CosineAnnealingLR", T_max=4, eta_min=1e-5)])
    assert clf._optimizer.learning_rate == pytest.approx(1e-5)
    assert lrs(clf)[0] == 0.01 and lrs(clf) == sorted(lrs(clf), reverse=True)


def test_per_batch_policy_changes_the_rate_every_batch(kind, data):
    clf = fit(kind, data, callbacks=[
        LRScheduler(policy="CyclicLR", base_lr=1e-4, max_lr=1e-2, step_size_up=3,
                    step_every="batch")])
    per_batch = [b["event_lr"] for row in clf.net_.history for b in row["batches"]]
    assert len(per_batch) == 16 and len(set(np.round(per_batch, 8))) > 3


def test_warm_restart_lr_restarts(kind, data):
    clf = fit(kind, data, max_iter=6, callbacks=[
        LRScheduler(policy="WarmRestartLR", min_lr=1e-5, max_lr=0.01,
                    base_period=2)])
    rates = lrs(clf)
    assert rates[1] < rates[0]  # annealed within the first period,
    assert max(rates[2:]) > rates[1]  # then back up: a warm restart


# --------------------------------------------------------------- scoring
def test_epoch_scoring_with_sklearn_scorer_names(kind, data):
    clf = fit(kind, data, early_stopping=True, callbacks=[
        EpochScoring("f1_macro", lower_is_better=False),
        EpochScoring("accuracy", on_train=True, name="train_acc_skorch",
                     lower_is_better=False)])
    history = clf.net_.history
    assert all(0.0 <= row["f1_macro"] <= 1.0 for row in history)
    assert "f1_macro_best" in history[-1]
    # on training batches, skorch's accuracy is the accuracy sknn counts
    for row in history:
        assert row["train_acc_skorch"] == pytest.approx(row["train_acc"])


def test_batch_scoring_records_per_batch_and_epoch(kind, data):
    clf = fit(kind, data, callbacks=[
        BatchScoring("accuracy", on_train=True, name="batch_acc",
                     lower_is_better=False)])
    row = clf.net_.history[-1]
    per_batch = [b["batch_acc"] for b in row["batches"]]
    assert len(per_batch) == 4
    assert row["batch_acc"] == pytest.approx(np.mean(per_batch))


def test_passthrough_scoring_averages_a_batch_value(kind, data):
    clf = fit(kind, data, callbacks=[
        PassthroughScoring(name="train_batch_size", on_train=True)])
    assert clf.net_.history[-1, "train_batch_size"] == pytest.approx(50.0)


def test_default_scorers_write_skorch_history_keys(kind, data):
    clf = fit(kind, data, early_stopping=True)
    row = clf.net_.history[-1]
    for key in ("train_loss", "train_loss_best", "valid_loss", "valid_loss_best",
                "valid_acc", "valid_acc_best", "dur"):
        assert key in row, key
    assert clf.loss_curve_ == [r["train_loss"] for r in clf.net_.history]


def test_valid_acc_is_weighted_by_sample_weight_as_sklearn():
    from sknn._callbacks import weighted_accuracy
    from sknn._data import TensorDataset

    class Net:
        def predict(self, X):
            return np.array([0, 1, 1, 0])

    y = np.array([0, 1, 0, 1])
    valid = TensorDataset(torch.zeros(4, 2), torch.tensor(y),
                          torch.tensor([3.0, 1.0, 1.0, 1.0]))
    assert weighted_accuracy(Net(), valid, y) == pytest.approx(4 / 6)
    unweighted = TensorDataset(torch.zeros(4, 2), torch.tensor(y))
    assert weighted_accuracy(Net(), unweighted, y) == pytest.approx(0.5)


# ------------------------------------------------------ gradients, params
def test_gradient_norm_clipping_bounds_each_step(kind, data):
    # one full batch, plain SGD, no L2: the step is lr * gradient, clipped
    clf = fit(kind, data, max_iter=1, batch_size=200, solver="sgd", momentum=0.0,
              alpha=0.0, learning_rate_init=1.0,
              callbacks=[Snapshot(), GradientNormClipping(gradient_clip_value=1e-3)])
    start = dict(clf.net_.callbacks_)["Snapshot"].state_
    step = torch.sqrt(sum(((clf.net_.module_.state_dict()[k] - v) ** 2).sum()
                          for k, v in start.items() if v.is_floating_point()))
    assert 0 < float(step) <= 1e-3 * 1.0001


def test_freezer_keeps_the_first_layer(kind, data):
    clf = fit(kind, data, callbacks=[Snapshot(), Freezer(FIRST_LAYER[kind])])
    start = dict(clf.net_.callbacks_)["Snapshot"].state_
    name = FIRST_LAYER[kind].replace("*", "weight")
    torch.testing.assert_close(first_layer(clf, kind), start[name])
    last = [k for k in start if k.endswith("weight")][-1]
    assert not torch.equal(clf.net_.module_.state_dict()[last], start[last])


def test_unfreezer_releases_the_layer_later(kind, data):
    pattern = FIRST_LAYER[kind]
    clf = fit(kind, data, callbacks=[Snapshot(), Freezer(pattern),
                                     Unfreezer(pattern, at=3)])
    start = dict(clf.net_.callbacks_)["Snapshot"].state_
    name = pattern.replace("*", "weight")
    assert not torch.equal(first_layer(clf, kind), start[name])


def test_initializer_sets_the_first_layer(kind, data):
    clf = fit(kind, data, max_iter=1, learning_rate_init=1e-9, alpha=0.0,
              callbacks=[Initializer(FIRST_LAYER[kind].replace("*", "weight"),
                                     fn=partial(torch.nn.init.constant_, val=0.5))])
    torch.testing.assert_close(first_layer(clf, kind),
                               torch.full_like(first_layer(clf, kind), 0.5))


# ----------------------------------------------------------- display
def test_print_log_named_like_the_default_replaces_sklearn_lines(kind, data,
                                                                 capsys):
    fit(kind, data, verbose=True, callbacks=[("print_log", PrintLog())])
    out = capsys.readouterr().out
    assert "train_loss" in out and "dur" in out  # skorch's table
    assert "Iteration 1, loss" not in out


def test_verbose_prints_sklearn_lines(kind, data, capsys):
    fit(kind, data, verbose=True, early_stopping=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ")
    assert lines[1].startswith("Validation score: ")


def test_skorch_progress_bar_counts_the_batches(kind, data):
    class BarState(Callback):
        def initialize(self):
            self.seen_ = []
            return self

        def on_epoch_end(self, net, **kwargs):
            bar = dict(net.callbacks_)["ProgressBar"].pbar_
            self.seen_.append((bar.n, bar.total))

    clf = fit(kind, data, callbacks=[ProgressBar(), BarState()])
    # every epoch's bar ran from 0 to its 4 batches
    assert dict(clf.net_.callbacks_)["BarState"].seen_ == [(4, 4)] * 4


def test_tensorboard_writes_event_files(kind, data, tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    fit(kind, data, callbacks=[TensorBoard(writer)])
    writer.close()
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_progress_bar_moves_by_epoch_with_labels(kind, data, capsys):
    fit(kind, data, progress_bar=True, verbose=True)
    captured = capsys.readouterr()
    assert "4/4" in captured.err
    assert "loss=" in captured.err and "accuracy=" in captured.err
    # the verbose lines stay whole beside the bar
    lines = [line for line in captured.out.splitlines() if line]
    assert [line.split(",")[0] for line in lines] == [
        f"Iteration {i}" for i in range(1, 5)]


def test_progress_bar_says_why_training_stopped(data, capsys):
    fit("mlp", data, max_iter=100, tol=1e9, n_iter_no_change=2, progress_bar=True)
    err = capsys.readouterr().err
    assert "Stopped early at epoch 4 of 100" in err
    assert "Training loss did not improve more than tol" in err
    assert "4/100" in err


def test_user_callbacks_are_copied_not_mutated(data):
    recorder = Snapshot()
    clf = fit("mlp", data, callbacks=[recorder])
    assert not hasattr(recorder, "state_")
    assert hasattr(dict(clf.net_.callbacks_)["Snapshot"], "state_")


# ------------------------------------------- scikit-learn's semantics
class _History(list):
    """Just enough of skorch's History for one callback: history[-1, key]."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return list.__getitem__(self, key[0])[key[1]]
        return list.__getitem__(self, key)


class _Net:
    def __init__(self, lr=0.1):
        self.history = _History()
        self.module_ = torch.nn.Linear(2, 1)
        self.optimizer_ = torch.optim.SGD(self.module_.parameters(), lr=lr)
        self.verbose = False

    def epoch(self, **scores):
        self.history.append(scores)


def run(callback, net, scores, key):
    """Feed ``scores`` epoch by epoch; return the epoch (1-based) it stopped at."""
    callback.initialize()
    callback.on_train_begin(net)
    for epoch, score in enumerate(scores, start=1):
        net.epoch(**{key: score})
        try:
            callback.on_epoch_end(net)
        except KeyboardInterrupt:
            return epoch
    return None


def test_loss_stopping_counts_epochs_without_tol_improvement():
    net = _Net()
    stopping = NoImprovementStopping("train_loss", tol=0.1, n_iter_no_change=2)
    # 1.0 is best; 0.95 and 0.92 improve by < tol; the third such epoch stops
    stopped = run(stopping, net, [1.0, 0.95, 0.92, 0.91, 0.5], "train_loss")
    assert stopped == 4
    assert stopping.best_ == pytest.approx(0.91)
    assert stopping.no_improvement_count_ == 3
    assert "Training loss did not improve more than tol=0.100000 for 2" in (
        stopping.stop_reason_)


def test_adaptive_divides_the_rate_then_stops_when_tiny():
    net = _Net(lr=4e-6)
    stopping = NoImprovementStopping("train_loss", tol=1.0, n_iter_no_change=1,
                                     adaptive=True)
    stopped = run(stopping, net, [1.0] * 10, "train_loss")
    # 4e-6 -> 8e-7 after epoch 3; at epoch 5 the rate is too small: stop
    assert stopped == 5
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(8e-7)
    assert "Learning rate too small" in stopping.stop_reason_


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_changing_rate_follows_sklearn_momentum(nesterov):
    """torch SGD plus set_lr takes scikit-learn's SGDOptimizer's steps."""
    rng = np.random.RandomState(0)
    target = rng.normal(size=5)
    theirs = rng.normal(size=5)
    ours = torch.tensor(theirs.copy(), requires_grad=True)
    sk = SGDOptimizer([theirs], learning_rate_init=0.1, lr_schedule="invscaling",
                      momentum=0.9, nesterov=nesterov, power_t=0.5)
    opt = torch.optim.SGD([ours], lr=0.1, momentum=0.9, nesterov=nesterov)
    t = 0
    for _ in range(6):  # epochs of 3 steps, the rate falls after each epoch
        for _ in range(3):
            sk.update_params([theirs], [theirs - target])
            ours.grad = ours.detach() - torch.tensor(target)
            opt.step()
        t += 3
        sk.iteration_ends(t)
        set_lr(opt, 0.1 / (t + 1) ** 0.5)
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=1e-10)


def test_sknn_callbacks_can_be_replaced_or_removed_by_name(data):
    clf = fit("mlp", data, callbacks=[("thread_tuner", None),
                                      ("sklearn_stopping", None)])
    names = [name for name, _ in clf.net_.callbacks_]
    assert "thread_tuner" not in names and "sklearn_stopping" not in names
    assert "threads" not in clf.net_.history[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_ctrl_c_swallowed_on_its_way_still_stops_training(data):
    class PressCtrlCAndSwallow(Callback):
        """Presses Ctrl-C inside a try that swallows the KeyboardInterrupt."""

        def on_batch_end(self, net, training=False, **kwargs):
            if training and len(net.history) == 2 and not getattr(self, "done_", 0):
                self.done_ = 1
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                except KeyboardInterrupt:
                    pass

    clf = MLPClassifierTorch(max_iter=10, random_state=0, device="cpu",
                             batch_size=50, callbacks=[PressCtrlCAndSwallow()])
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(*data)
    assert clf.n_iter_ == 1  # the second epoch stopped at its first batch's end
