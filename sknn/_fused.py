"""The stacked trainer: several ``MLPClassifierTorch`` or ``MLPRegressorTorch``
fits trained as one.

:func:`prepare` checks and encodes one fit's data exactly as the estimator's
``fit`` does (or raises its error), and :func:`fusion_key` says which fits can
share a stack: the same estimator class, solver, activation, layer sizes,
input width, output kind and device. :func:`train_stack` trains a list of
prepared fits as stacked networks (:mod:`sknn._stacked`) and returns, for
each, the fitted estimator its single fit makes:

- the same initial weights (``est._build_module`` under ``torch_rng(seed)``,
  the seed drawn from ``random_state`` before the early-stopping split, which
  uses the same ``RandomState``);
- the same batches (a ``torch.Generator`` seeded with that seed draws each
  epoch's permutation, as ``sknn._data.BatchIterator`` does); folds of
  different sizes have batches of their own, a short last batch is masked;
- the same loss (the sample-weighted mean of the per-sample loss: log-loss,
  or a regressor's half squared error summed over the outputs and reported
  averaged over them, or half Poisson deviance), L2 term
  (``alpha / (batch_size * mean sample weight)`` as weight decay on the
  weights), optimizer steps, learning-rate schedules and stopping rules
  (``tol``, ``n_iter_no_change``, ``max_iter``, early stopping on its own
  validation split, stratified for a classifier, on its accuracy or R^2, with
  the best weights restored; a NaN score or loss compared as scikit-learn
  compares it; a fit whose loss and weights are not finite ends there, as
  ``NonFiniteStop`` ends it);
- the same fitted attributes (``loss_curve_``, ``n_iter_``, ``best_loss_``,
  ``validation_scores_``, ``history_``, ``coefs_``...).

A network that has stopped leaves the stack at the end of its epoch.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from sknn._callbacks import diverged
from sknn._compat import _check_sample_weight
from sknn._fitted import fitted_attributes
from sknn._stacked import (
    StackedAdam,
    StackedMLP,
    StackedSGD,
    correct,
    per_sample_loss,
)
from sknn._targets import REGRESSION_KINDS
from sknn._training import MAX_SEED, l2_coefficient, torch_rng

#: rows per forward pass when validating
_VALID_BATCH = 8192


@dataclass
class Member:
    """One fit to train in a stack: its estimator (parameters validated,
    ``n_features_in_``, ``n_outputs_`` and, for a classifier, ``classes_`` and
    ``target_encoder_`` set), its data (float32 X, encoded y, combined sample
    weights or None) and its network output (``sknn._targets.KINDS``)."""

    est: object
    X: np.ndarray
    y: np.ndarray
    weight: object
    kind: str = ""
    extra: dict = field(default_factory=dict)


def prepare(est, X, y, sample_weight=None):
    """Validate ``est``'s parameters and the data as ``est.fit(X, y,
    sample_weight)`` does.

    Raises what that fit would raise for bad parameters or data.
    """
    from sknn._parallel import resolve_device

    est._validate_params()
    Xv, yv = est._validate_Xy(X, y, reset=True)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, Xv)
    y_enc, weight = est._encode_targets(yv, sample_weight, incremental=False,
                                        first_call=False)
    est.device_ = resolve_device(est.device)
    kind = est._output_spec()[1]
    Xf = Xv if Xv.dtype == np.float32 and Xv.flags.c_contiguous else (
        np.ascontiguousarray(Xv, dtype=np.float32))
    return Member(est, Xf, np.asarray(y_enc), weight, kind)


def fusion_key(member):
    """What fits must share to train in one stack, or None when this fit must
    take the per-fit path (its own ``fit``)."""
    from sknn._mlp import MLPClassifierTorch
    from sknn._regressor import MLPRegressorTorch

    est = member.est
    if (type(est) not in (MLPClassifierTorch, MLPRegressorTorch)
            or est.solver not in ("adam", "sgd")
            or est.dropout or est.batch_norm or est.callbacks or est.verbose
            or est.progress_bar or est.precision != "float32"):
        return None
    # the class first: a classifier and a regressor never share a stack
    return (type(est).__name__, est.solver, est.activation, est._hidden_sizes(),
            member.X.shape[1], member.kind, est.n_outputs_, str(est.device_),
            bool(est.shuffle), est.batch_size)


def estimate_bytes(member):
    """Memory of one network in a stack: weights, gradients and optimizer
    state, and a batch's activations and their gradients (float32)."""
    est = member.est
    sizes = [member.X.shape[1], *est._hidden_sizes(), est.n_outputs_]
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    slots = 4 if est.solver == "adam" else 3
    batch = 200 if est.batch_size == "auto" else int(est.batch_size)
    return 4 * (slots * n_params + 2 * batch * sum(sizes))


# ------------------------------------------------------------------ set-up
class _Fit:
    """Per-network training state inside :func:`train_stack`."""

    def __init__(self, member, offset, device):
        est = member.est
        self.member = member
        rs = check_random_state(est.random_state)
        self.seed = int(rs.randint(MAX_SEED))
        n = len(member.X)
        rows = np.arange(n)
        weight = member.weight
        self.valid = None
        if est.early_stopping:
            stratify = None
            if est.n_outputs_ == 1 and member.kind not in REGRESSION_KINDS:
                stratify = np.asarray(member.y).reshape(-1, 1) > 0.5
            train_idx, valid_idx = train_test_split(
                rows, random_state=rs, test_size=est.validation_fraction,
                stratify=stratify)
            if len(valid_idx) < 2:
                raise ValueError(
                    "The validation set is too small. Increase "
                    "'validation_fraction' or the size of your dataset.")
            self.valid = (torch.from_numpy(valid_idx + offset).to(device),
                          None if weight is None else
                          torch.from_numpy(weight[valid_idx]).to(device))
            rows = train_idx
        self.n = len(rows)
        self.rows = torch.from_numpy(rows + offset)
        self.weight = None if weight is None else torch.from_numpy(
            np.ascontiguousarray(weight[rows]))
        self.batch_size = est._batch_size(self.n)
        if (self.weight is not None and self.batch_size >= self.n
                and not float(self.weight.sum())):
            raise ValueError(
                "Sample weights sum to zero over the training batch, so the "
                "weighted mean loss is undefined. Give the samples weights "
                "with a non-zero sum.")
        self.l2 = l2_coefficient(est.alpha, self.batch_size, weight)
        self.total_weight = float(self.n if self.weight is None else self.weight.sum())
        self.generator = torch.Generator().manual_seed(self.seed)
        # torch_rng holds the process's RNG lock: threads build one at a time
        with torch_rng(self.seed, est.device_):
            self.module = est._build_module(member.X.shape[1], est.n_outputs_)
        self.init_layers = [(layer.weight, layer.bias)
                            for layer in self.module.linear_layers()]
        # scikit-learn's stopping state (NoImprovementStopping)
        self.lr = est.learning_rate_init
        self.best = -np.inf if est.early_stopping else np.inf
        self.best_score = -np.inf  # skorch's scorer's best_score_
        self.count = 0
        # scikit-learn's _best_coefs start as the initial weights
        self.best_state = [(w.detach().cpu().clone(), b.detach().cpu().clone())
                           for w, b in self.init_layers] if est.early_stopping else None
        self.stop_reason = None
        self.t = 0
        self.rows_history = []
        self.seconds = 0.0
        self.done = False

    @property
    def n_batches(self):
        return -(-self.n // self.batch_size)

    def epoch_order(self, shuffle, width, n_batches):
        """This epoch's rows and weights as ``(n_batches, width)`` tensors,
        each batch padded to ``width`` with row 0 of weight 0."""
        if shuffle:
            perm = torch.randperm(self.n, generator=self.generator)
        else:
            perm = torch.arange(self.n)
        rows = torch.zeros(n_batches, width, dtype=torch.long)
        weight = torch.zeros(n_batches, width)
        bs = self.batch_size
        src_w = (torch.ones(self.n) if self.weight is None else self.weight)[perm]
        src_r = self.rows[perm]
        for j in range(self.n_batches):
            chunk = slice(j * bs, (j + 1) * bs)
            k = len(src_r[chunk])
            rows[j, :k] = src_r[chunk]
            weight[j, :k] = src_w[chunk]
        return rows, weight


# ---------------------------------------------------------------- training
def train_stack(members, device="cpu"):
    """Train ``members`` (prepared fits sharing one :func:`fusion_key`) as one
    stack on ``device``.

    Returns
    -------
    results : list of (estimator or exception, seconds)
        For each member in order, its fitted estimator (or the error its single
        fit would raise) and its share of the stack's wall time.
    """
    start = time.perf_counter()
    device = torch.device(device)
    blocks, offsets = {}, []
    for member in members:
        if id(member.X) not in blocks:
            blocks[id(member.X)] = (sum(len(b) for _, b in blocks.values()), member.X)
        offsets.append(blocks[id(member.X)][0])
    X_all = torch.from_numpy(np.concatenate([b for _, b in blocks.values()])
                             if len(blocks) > 1 else members[0].X).to(device)
    y_all = torch.from_numpy(_stack_targets(members)).to(device)
    fits, outcomes = [], [None] * len(members)
    for i, (member, offset) in enumerate(zip(members, offsets)):
        try:
            fits.append(_Fit(member, offset, device))
        except Exception as exc:  # noqa: BLE001 - the single fit's error
            outcomes[i] = exc
    trained = [f for f in fits if f is not None]
    if trained:
        from sknn._threads import fit_threads

        cpu = device.type == "cpu"
        work = _batch_work(trained) if cpu else None
        with fit_threads(work) as budget:
            threads = _ThreadChooser(budget if cpu else 1)
            _train(trained, X_all, y_all, members[0].kind, device, threads)
    fits = iter(trained)
    for i, outcome in enumerate(outcomes):
        if outcome is None:
            fit = next(fits)
            try:
                outcomes[i] = (_fitted(fit, device), fit.seconds)
            except Exception as exc:  # noqa: BLE001 - the single fit's error
                outcomes[i] = (exc, fit.seconds)
        else:
            outcomes[i] = (outcome, 0.0)
    # the set-up and the assembly of the estimators, shared alike
    shared = (time.perf_counter() - start - sum(t for _, t in outcomes)) / len(members)
    return [(outcome, seconds + shared) for outcome, seconds in outcomes]


def _stack_targets(members):
    """The encoded targets of every data block, in the order of ``X_all``:
    members of the same block share X, and therefore y."""
    seen, ys = set(), []
    for member in members:
        if id(member.X) not in seen:
            seen.add(id(member.X))
            ys.append(member.y)
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    return np.ascontiguousarray(y)


def _batch_work(fits):
    """Multiply-accumulates of one stacked batch (forward pass)."""
    return sum(f.batch_size * sum(p.numel() for p in f.module.parameters())
               for f in fits)


class _ThreadChooser:
    """The fastest torch thread count for this stack's batches, now.

    On a machine others load, a second OpenMP thread can make a batch many
    times slower (it waits for a core another process holds: measured here,
    200-300 ms on 2 threads for a batch of 3-13 ms on one). The counts
    (``sknn._threads.candidate_counts``, none beyond the cores other
    processes leave free) are timed on a few batches each, fewest threads
    first; a count whose batch is far slower than the best so far is dropped
    at once. The comparison is made again every few seconds, as sknn's
    ``ThreadTuner`` does for a single fit.
    """

    TRIAL = 3
    RECHECK_S = 3.0
    #: a count whose batch takes this many times the best median is dropped
    TOO_SLOW = 1.5

    def __init__(self, budget):
        from sknn._threads import candidate_counts

        self.all_counts = candidate_counts(budget)
        self.best = self.all_counts[0]
        self.since = None
        self._start_trials()

    def _start_trials(self):
        from sknn._parallel import cpu_count
        from sknn._threads import busy_elsewhere

        busy = busy_elsewhere()
        free = cpu_count() if busy is None else max(1, cpu_count() - busy)
        counts = [c for c in self.all_counts if c <= free] or [1]
        self.times = {}
        self.plan = [] if len(counts) == 1 else [
            c for c in counts for _ in range(self.TRIAL + 1)]
        if not self.plan:
            self.best = counts[0]
            self.since = time.perf_counter()

    def begin(self):
        self.count = self.plan[0] if self.plan else self.best
        if torch.get_num_threads() != self.count:
            torch.set_num_threads(self.count)
        self.tic = time.perf_counter()

    def _median(self, count):
        times = sorted(self.times[count][1:])  # the first batch warms up
        return times[len(times) // 2] if times else None

    def end(self):
        now = time.perf_counter()
        if not self.plan:
            if now - self.since > self.RECHECK_S:
                self._start_trials()
            return
        self.plan.pop(0)
        self.times.setdefault(self.count, []).append(now - self.tic)
        done = {c: self._median(c) for c in self.times if c != self.count}
        done = [t for t in done.values() if t is not None]
        if done and now - self.tic > self.TOO_SLOW * min(done):
            self.plan = [c for c in self.plan if c != self.count]
        if not self.plan:
            medians = {c: self._median(c) for c in self.times}
            medians = {c: t for c, t in medians.items() if t is not None}
            self.best = min(medians, key=medians.get) if medians else 1
            self.since = now


def _train(fits, X_all, y_all, kind, device, threads):
    est0 = fits[0].member.est
    regression = kind in REGRESSION_KINDS
    # the loss a regressor's net records: the squared error per output
    scale = 1.0 / est0.n_outputs_ if kind == "continuous" else 1.0
    live = list(fits)
    model = StackedMLP([f.init_layers for f in live], est0.activation, device)
    ests = [f.member.est for f in live]
    if est0.solver == "adam":
        opt = StackedAdam(model, [e.learning_rate_init for e in ests],
                          [f.l2 for f in live], [e.beta_1 for e in ests],
                          [e.beta_2 for e in ests], [e.epsilon for e in ests], device)
    else:
        opt = StackedSGD(model, [e.learning_rate_init for e in ests],
                         [f.l2 for f in live], [e.momentum for e in ests],
                         [float(e.nesterovs_momentum and e.momentum > 0) for e in ests],
                         device)
    shuffle = bool(est0.shuffle)
    width = max(f.batch_size for f in live)
    epoch = 0
    while live:
        epoch += 1
        tic = time.perf_counter()
        n_batches = max(f.n_batches for f in live)
        orders = [f.epoch_order(shuffle, width, n_batches) for f in live]
        rows = torch.stack([o[0] for o in orders]).to(device)     # (M, K, B)
        weights = torch.stack([o[1] for o in orders]).to(device)  # (M, K, B)
        counts = torch.tensor([[min(f.batch_size, max(f.n - j * f.batch_size, 0))
                                for j in range(n_batches)] for f in live])
        ragged = any(f.n_batches < n_batches for f in live)
        losses, corrects = [], []
        for j in range(n_batches):
            threads.begin()
            idx = rows[:, j]
            w = weights[:, j]
            logits = model.forward(X_all[idx])
            yb = y_all[idx]
            per_sample = per_sample_loss(logits, yb, kind)
            loss = (per_sample * w).sum(1) / w.sum(1).clamp_min(1e-12)
            grads = torch.autograd.grad(loss.sum(), model.params)
            active = None
            if ragged:
                active = (counts[:, j] > 0).to(device).reshape(-1, 1, 1)
            opt.step(grads, active)
            losses.append(loss.detach())
            if not regression:
                corrects.append((correct(logits.detach(), yb, kind) * w).sum(1))
            threads.end()
        losses = torch.stack(losses, 1).double().cpu()        # (M, K)
        penalty = 0.5 * (opt.l2.reshape(-1) * model.squared_norms()).double().cpu()
        train_loss = ((losses * counts).sum(1) / counts.sum(1) * scale
                      + penalty).tolist()
        if not regression:
            corrects = torch.stack(corrects, 1).sum(1).double().cpu()
        valid = [_validate(model, m, f, X_all, y_all, kind, scale)
                 if f.valid is not None else None for m, f in enumerate(live)]
        seconds = time.perf_counter() - tic
        stopped = []
        for m, f in enumerate(live):
            f.seconds += seconds / len(live)
            record = {"epoch": epoch, "train_loss": train_loss[m],
                      "train_samples": f.n, "dur": seconds / len(live)}
            if not regression:
                record["train_acc"] = float(corrects[m]) / f.total_weight
            if valid[m] is not None:
                record["valid_loss"], record[_score_key(kind)] = valid[m]
            f.rows_history.append(record)
            if _end_of_epoch(f, m, record, model, opt):
                stopped.append(m)
        if stopped:
            for m in stopped:
                live[m].final_state = model.state(m)
            keep = [m for m in range(len(live)) if m not in stopped]
            live = [live[m] for m in keep]
            if live:
                index = torch.tensor(keep, device=device)
                model.select(index)
                opt.select(index)


def _score_key(kind):
    """The history key of the validation score, as the single fit's
    (``FitConfig.score_key``): accuracy, or a regressor's R^2."""
    return "valid_r2" if kind in REGRESSION_KINDS else "valid_acc"


def _validate(model, m, f, X_all, y_all, kind, scale):
    """(validation loss times ``scale``, validation score) of network ``m``:
    its accuracy or, for a regressor, R^2 as its single fit's scorer
    (``sknn._callbacks.weighted_r2``) computes it."""
    rows, weight = f.valid
    with torch.no_grad():
        logits = torch.cat([model.forward_one(m, X_all[rows[i:i + _VALID_BATCH]])
                            for i in range(0, len(rows), _VALID_BATCH)])
        y = y_all[rows]
        per = per_sample_loss(logits[None], y[None], kind)[0]
        loss = per.mean() if weight is None else (per * weight).sum() / weight.sum()
        if kind in REGRESSION_KINDS:
            return float(loss) * scale, _r2(logits, y, weight, kind)
        ok = correct(logits, y, kind)
        score = ok.mean() if weight is None else (ok * weight).sum() / weight.sum()
        return float(loss) * scale, float(score)


def _r2(outputs, y, weight, kind):
    """scikit-learn's R^2 (averaged over the outputs) of the float64
    predictions (``exp`` of the outputs for the Poisson loss); NaN where they
    are not finite, as scikit-learn's MLPRegressor scores them."""
    from sklearn.metrics import r2_score

    pred = torch.exp(outputs) if kind == "poisson" else outputs
    pred = pred.cpu().numpy().astype(np.float64)
    if not np.isfinite(pred).all():
        return np.nan
    return float(r2_score(y.cpu().numpy().astype(np.float64), pred,
                          sample_weight=None if weight is None
                          else weight.cpu().numpy()))


def _end_of_epoch(f, m, record, model, opt):
    """sknn's end-of-epoch callbacks for one network, in their order: best
    weights (early stopping), inverse scaling, then the stopping rule.
    Returns True when the network stops."""
    est = f.member.est
    key = _score_key(f.member.kind)
    if est.early_stopping:
        # skorch's <key>_best: better than its scorer's best_score_ so far
        # (a NaN R^2 is never best, nor taken as the best)
        is_best = bool(record[key] > f.best_score)
        record[f"{key}_best"] = is_best
        if is_best:
            f.best_score = record[key]
            f.best_state = model.state(m)
    if est.solver == "sgd" and est.learning_rate == "invscaling":
        f.t += f.n
        f.lr = est.learning_rate_init / pow(f.t + 1, est.power_t)
        opt.set_lr(m, f.lr)
    score = record[key] if est.early_stopping else record["train_loss"]
    # scikit-learn's comparisons: a NaN restarts the count, is never the best
    if est.early_stopping:
        no_improvement, is_best = score < f.best + est.tol, score > f.best
    else:
        no_improvement, is_best = score > f.best - est.tol, score < f.best
    f.count = f.count + 1 if no_improvement else 0
    if is_best:
        f.best = float(score)
    if f.count > est.n_iter_no_change:
        what = "Validation score" if est.early_stopping else "Training loss"
        reason = (f"{what} did not improve more than tol={est.tol:f} for "
                  f"{est.n_iter_no_change} consecutive epochs.")
        adaptive = est.solver == "sgd" and est.learning_rate == "adaptive"
        if adaptive and f.lr > 1e-6:
            f.lr = f.lr / 5.0
            opt.set_lr(m, f.lr)
            f.count = 0
        else:
            f.stop_reason = reason + (" Learning rate too small." if adaptive else "")
            return True
    if len(f.rows_history) >= est.max_iter:
        return True
    # sknn's NonFiniteStop: a loss and weights that are not finite end the fit
    # (NaN weights stay NaN)
    return diverged(record["train_loss"], (p[m] for p in model.params))


# ---------------------------------------------------------- fitted models
def _fitted(f, device):
    """The estimator of a trained network, with the attributes its single fit
    sets."""
    from skorch.history import History

    from sknn._training import optimizer_policy

    est = f.member.est
    state = f.best_state if est.early_stopping else f.final_state
    module_state = {}
    names = [name for name, layer in f.module.named_children()
             if isinstance(layer, torch.nn.Linear)]
    for layer_name, (w, b) in zip(names, state):
        module_state[f"{layer_name}.weight"] = w
        module_state[f"{layer_name}.bias"] = b
    device_ = est.device_
    est._rebuild(module_state)  # under torch_rng and its lock
    est.device_ = device_
    net = est.net_
    # the net as the single fit leaves it: its batch size, L2 term, rate,
    # history and stopping state
    net.batch_size = f.batch_size
    for key, value in optimizer_policy(est, f.l2).items():
        setattr(net, key, value)
    net.initialize_optimizer()
    for group in net.optimizer_.param_groups:
        group["lr"] = f.lr
    history = [dict(r, batches=[]) for r in f.rows_history]
    net.history_ = History(history)
    net.epochs_run_ = len(history)
    callbacks = dict(net.callbacks_)
    stopping = callbacks.get("sklearn_stopping")
    if stopping is not None:
        stopping.best_, stopping.no_improvement_count_ = f.best, f.count
        stopping.stop_reason_ = f.stop_reason
    if "sklearn_invscaling" in callbacks:
        callbacks["sklearn_invscaling"].t_ = f.t
    if torch.device(device_).type != "cpu":
        net.device = device_
        net.module_.to(device_)
    # the fitted attributes and the warning as the single fit derives them
    # from its net (sknn._fitted), the warning kept for sknn.model_selection to
    # emit when scikit-learn's search takes this fit
    attributes, est._fit_warnings = fitted_attributes(
        net, est._fit_config(est.n_features_in_), interrupted=False)
    for name, value in attributes.items():
        setattr(est, name, value)
    return est
