"""Grid and randomized searches that train sknn networks as stacks.

:class:`GridSearchCV` and :class:`RandomizedSearchCV` are scikit-learn's,
with the same parameters, attributes and results. When the estimator is an
:class:`~sknn.MLPClassifierTorch` or an :class:`~sknn.MLPRegressorTorch`, or a
:class:`~sklearn.pipeline.Pipeline` ending in one, the (candidate, fold) fits
whose networks have the same shape
train together as one stacked model (:mod:`sknn._fused`), each exactly the
fit it would be alone; the rest are fitted one by one, as scikit-learn does.

How a search runs
-----------------
1. *Plan* (for each call of scikit-learn's ``evaluate_candidates``): the
   search's fit parameters are sliced for each fold as scikit-learn's
   ``_fit_and_score`` slices them; the Pipeline's steps before the network
   are fitted once per fold and per setting of their own parameters, by the
   Pipeline's own ``fit`` with a stand-in for the network that records its X
   and the fit parameters routed to it (``mlp__sample_weight``, or metadata
   routing); each (candidate, fold) network is checked, with its
   ``sample_weight``, and grouped by what must be shared to stack (estimator
   class, solver, activation, layer sizes, input width, outputs, device,
   batch size). Stacks above a memory budget are split.
2. *Train*: the stacks and the fits that cannot stack run over ``n_jobs``
   joblib workers (stacks on a GPU run one after another in this process).
3. *Score*: scikit-learn's own ``evaluate_candidates`` and ``_fit_and_score``
   score every (candidate, fold) through a stand-in estimator whose ``fit``
   hands over the model trained in step 2 (or re-raises its error), so that
   ``scoring``, ``error_score``, ``return_train_score``, ``refit`` and every
   ``cv_results_`` key are scikit-learn's (scikit-learn passes the test
   folds' ``sample_weight`` to a scorer that takes it: the stand-in's
   ``score`` is the estimator's own, with its signature). ``fit_time`` is the
   fit's share of its stack's time. The refit on the whole data is an
   ordinary fit.
"""

import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from inspect import signature

from joblib import Parallel, delayed, effective_n_jobs
from joblib import hash as joblib_hash
from sklearn import model_selection as _sk
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags, indexable

from sknn._compat import (
    _check_method_params,
    _safe_indexing,
    _safe_split,
    warn_external,
)
from sknn._pipeline import final_estimator

#: bytes one stack may take on the CPU (weights, gradients, optimizer state
#: and a batch's activations, estimated); on a GPU, half its free memory
CPU_STACK_BYTES = 2 << 30

_PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba",
                    "decision_function", "score", "transform")


# ------------------------------------------------------------ the stand-in
class _Store:
    """What the training stage produced, shared (never copied) by every
    clone of the stand-in estimator in this process."""

    def __init__(self):
        self.results = {}      # (candidate key, fold) -> (outcome, seconds)
        self.expected = []     # (candidate key, fold) in scikit-learn's order
        self.folds = []        # fold -> fingerprint of its training rows
        self.cursor = 0
        self.fit_times = []    # per fit, in the order scikit-learn made them

    def __deepcopy__(self, memo):
        return self

    def __getstate__(self):
        # another process gets an empty store, and fits there
        return dict(_Store().__dict__)


class _Prefitted(BaseEstimator):
    """Stands in for the searched estimator while scikit-learn scores the
    candidates: ``set_params`` goes to the estimator; ``fit`` takes the model
    the training stage made for these parameters and this fold (or raises its
    error), or fits the estimator when there is none (the refit)."""

    def __init__(self, estimator, store):
        self.estimator = estimator
        self.store = store

    def set_params(self, **params):
        if set(params) <= {"estimator", "store"}:
            return super().set_params(**params)
        self.estimator.set_params(**params)
        self.candidate_ = params
        return self

    def fit(self, X, y=None, **fit_params):
        start = time.perf_counter()
        store = self.store
        key = None
        if store.cursor < len(store.expected):
            key = store.expected[store.cursor]
            store.cursor += 1
            if (key[0] != _candidate_key(getattr(self, "candidate_", {}))
                    or store.folds[key[1]] != _fingerprint(X, y)):
                key = None  # not the fit planned: fit it here
        if key is not None and key in store.results:
            outcome, seconds = store.results.pop(key)
            store.fit_times.append(seconds)
            if isinstance(outcome, BaseException):
                raise outcome
            self.fitted_ = outcome
            # the fit's own warnings, from here: attributed to scikit-learn's
            # search, as those of the fits it makes itself
            for message, category in final_estimator(outcome).__dict__.pop(
                    "_fit_warnings", ()):
                warn_external(message, category)
            return self
        try:
            self.fitted_ = self.estimator.fit(X, y, **fit_params)
        finally:
            store.fit_times.append(time.perf_counter() - start)
        return self

    def _inner(self):
        return getattr(self, "fitted_", self.estimator)

    @property
    def classes_(self):
        return self._inner().classes_

    def __sklearn_tags__(self):
        return get_tags(self.estimator)

    def get_metadata_routing(self):
        from sklearn.utils.metadata_routing import get_routing_for_object

        return get_routing_for_object(self.estimator)


def _forward(name):
    # the fitted (or searched) estimator's own bound method: absent where it
    # has none, and with its signature, which scikit-learn reads (a
    # ``score`` that takes ``sample_weight`` is given the test folds' weights)
    def method(self):
        return getattr(self._inner(), name)

    return property(method, doc=f"The fitted estimator's ``{name}``.")


for _name in _PREDICT_METHODS:
    setattr(_Prefitted, _name, _forward(_name))


def _candidate_key(params):
    return joblib_hash(sorted(params.items()))


def _fingerprint(X, y):
    """A cheap identity of a training set: its size, its targets and a few of
    its rows (a fold planned on other rows fails to match and is refitted)."""
    n = len(X)
    rows = sorted({0, n // 3, n // 2, n - 1}) if n else []
    return joblib_hash((n, y, _safe_indexing(X, rows)))


# -------------------------------------------------------------- planning
def _network_step(estimator):
    """(prefix steps or None, the network) of an estimator that may fuse, or
    None when it cannot."""
    from sknn._mlp import MLPClassifierTorch
    from sknn._regressor import MLPRegressorTorch

    stacking = (MLPClassifierTorch, MLPRegressorTorch)
    if isinstance(estimator, Pipeline):
        last = estimator.steps[-1][1]
        if type(last) in stacking:
            return (estimator[:-1] if len(estimator.steps) > 1 else None), last
        return None
    if type(estimator) in stacking:
        return None, estimator
    return None


class _Plan:
    """The (candidate, fold) fits of one ``evaluate_candidates`` call, as
    stacks of prepared networks and single fits."""

    def __init__(self):
        self.stacks = defaultdict(list)   # fusion key -> [(fit id, member)]
        self.singles = []                 # (fit id, unfitted estimator)
        self.assemble = {}                # fit id -> pipeline to put the net in
        self.reasons = defaultdict(int)


class _NetworkInput(BaseEstimator):
    """Takes the network's place in a Pipeline to fit the steps before it:
    the Pipeline's own ``fit`` hands it what it would hand the network (the
    transformed X, and the fit parameters routed to the network's ``fit``,
    with or without metadata routing)."""

    def __init__(self, net):
        self.net = net

    def fit(self, X, y=None, **params):
        self.X_, self.params_ = X, params
        return self

    def get_metadata_routing(self):
        from sklearn.utils.metadata_routing import get_routing_for_object

        return get_routing_for_object(self.net)


def _network_input(est, net, X_train, y_train, params):
    """(fitted steps before the network, its X, its fit parameters) of
    Pipeline ``est`` fitted as scikit-learn fits it with ``params``."""
    pipe = clone(est)
    recorder = _NetworkInput(net)
    pipe.steps = [*pipe.steps[:-1], (pipe.steps[-1][0], recorder)]
    pipe.fit(X_train, y_train, **params)
    return pipe.steps[:-1], recorder.X_, recorder.params_


def _plan(base, candidates, X, y, splits, keys, fold_params):
    from sklearn.utils.metadata_routing import get_routing_for_object

    from sknn._fused import fusion_key, prepare

    plan = _Plan()
    prefixes, blocks = {}, {}
    for c, params in enumerate(candidates):
        try:
            est = clone(base).set_params(**clone(params, safe=False))
        except Exception:  # noqa: BLE001 - scikit-learn raises it when scoring
            continue
        parts = _network_step(est)
        for fold, (train, _) in enumerate(splits):
            fit_id = (keys[c], fold)
            if parts is None:
                plan.reasons["not an sknn MLP (or a Pipeline ending in one)"] += 1
                plan.singles.append((fit_id, est))
                continue
            prefix, net = parts
            X_train, y_train = _safe_split(est, X, y, train)
            Xt, net_params, block = X_train, fold_params[fold], (fold,)
            if isinstance(est, Pipeline):
                # the steps before the network, fitted once per fold, setting
                # of their own parameters and the network's metadata requests
                block = (fold, joblib_hash(clone(prefix) if prefix is not None
                                           else None),
                         str(get_routing_for_object(net)))
                if block not in prefixes:
                    try:
                        prefixes[block] = _network_input(
                            est, net, X_train, y_train, fold_params[fold])
                    except Exception:  # noqa: BLE001 - the single fit raises it
                        prefixes[block] = None
                if prefixes[block] is None:
                    plan.reasons["its Pipeline steps failed to fit"] += 1
                    plan.singles.append((fit_id, est))
                    continue
                prefix_steps, Xt, net_params = prefixes[block]
            if set(net_params) - {"sample_weight"}:
                plan.reasons["fit parameters other than sample_weight"] += 1
                plan.singles.append((fit_id, est))
                continue
            try:
                member = prepare(clone(net), Xt, y_train,
                                 net_params.get("sample_weight"))
            except Exception:  # noqa: BLE001 - the single fit raises it
                plan.reasons["invalid parameters or data"] += 1
                plan.singles.append((fit_id, est))
                continue
            key = fusion_key(member)
            if key is None:
                plan.reasons["a setting that does not stack (solver lbfgs, dropout, "
                             "batch_norm, callbacks, verbose, precision...)"] += 1
                plan.singles.append((fit_id, est))
                continue
            # the networks of a fold (and prefix setting) read one copy of X
            if block in blocks and blocks[block].shape == member.X.shape:
                member.X = blocks[block]
            blocks[block] = member.X
            if isinstance(est, Pipeline):
                plan.assemble[fit_id] = (est, prefix_steps)
            plan.stacks[key].append((fit_id, member))
    return plan


def _split_stacks(plan, n_workers):
    """Stacks within the memory budget, and at least one per worker when
    there are more workers than stacks."""
    from sknn._fused import estimate_bytes

    stacks = []
    for members in plan.stacks.values():
        device = members[0][1].est.device_
        budget = _budget(device)
        per_model = estimate_bytes(members[0][1])
        size = max(1, int(budget // max(per_model, 1)))
        stacks += [members[i:i + size] for i in range(0, len(members), size)]
    while len(stacks) < n_workers and max(map(len, stacks), default=1) > 1:
        big = max(range(len(stacks)), key=lambda i: len(stacks[i]))
        members = stacks.pop(big)
        half = len(members) // 2
        stacks += [members[:half], members[half:]]
    return stacks


def _cost(stack):
    """Rough work of a stack: parameters x rows x epochs of its networks."""
    from sknn._fused import estimate_bytes

    return sum(estimate_bytes(m) * len(m.X) * m.est.max_iter for _, m in stack)


def _budget(device):
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return CPU_STACK_BYTES


def _train_stack(members, device):
    from sknn._fused import train_stack

    return train_stack(members, device)


def _safe_train_stack(members, device):
    try:
        return _train_stack(members, device)
    except Exception as exc:  # noqa: BLE001 - reported, then fitted one by one
        return exc


def _fit_single(est, X, y, train, params):
    start = time.perf_counter()
    X_train, y_train = _safe_split(est, X, y, train)
    try:
        outcome = est.fit(X_train, y_train, **params)
    except Exception as exc:  # noqa: BLE001 - scored as error_score
        outcome = exc
    return outcome, time.perf_counter() - start


@contextmanager
def _scoring_threads():
    """Score (predict) on no more torch threads than the cores other
    processes leave free: on a loaded machine a second thread waits for a
    busy core (measured: a 600 x 10 softmax took 7 ms on 2 threads)."""
    import torch

    from sknn._parallel import cpu_count
    from sknn._threads import busy_elsewhere

    before = torch.get_num_threads()
    busy = busy_elsewhere()
    free = cpu_count() if busy is None else max(1, cpu_count() - busy)
    try:
        if free < before:
            torch.set_num_threads(free)
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _describe(stacks, plan):
    lines = []
    for members in stacks:
        est = members[0][1].est
        lines.append(
            f"  stack of {len(members)} fits: solver={est.solver}, "
            f"activation={est.activation}, hidden_layer_sizes="
            f"{est._hidden_sizes()}, device={est.device_}")
    for reason, n in plan.reasons.items():
        lines.append(f"  {n} fits one by one: {reason}")
    n_stacked = sum(map(len, stacks))
    return (f"[sknn] {n_stacked} fits in {len(stacks)} stacks, "
            f"{len(plan.singles)} fits one by one\n" + "\n".join(lines))


# ------------------------------------------------------------- the search
class _FusedSearch:
    """The fused training stage around scikit-learn's search."""

    def fit(self, X, y=None, **params):
        estimator = self.estimator
        if _network_step(estimator) is None:  # nothing can stack
            return super().fit(X, y, **params)
        n_jobs, store = self.n_jobs, _Store()
        self._fused = {"X": X, "y": y, "params": params, "n_jobs": n_jobs,
                       "store": store}
        self.estimator, self.n_jobs = _Prefitted(estimator, store), 1
        try:
            super().fit(X, y, **params)
        finally:
            self.estimator, self.n_jobs = estimator, n_jobs
            del self._fused
        if hasattr(self, "best_estimator_"):
            self.best_estimator_ = self.best_estimator_.fitted_
        return self

    def _get_routed_params_for_fit(self, params):
        # scikit-learn's fit calls it once: the fit parameters its fits take
        routed = super()._get_routed_params_for_fit(params)
        if hasattr(self, "_fused"):
            self._fused["routed"] = routed
        return routed

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        def evaluate(candidate_params, cv=None, more_results=None, **kw):
            candidate_params = list(candidate_params)
            if not hasattr(self, "_fused"):
                return evaluate_candidates(candidate_params, cv, more_results, **kw)
            self._train_fused(candidate_params, cv)
            with _scoring_threads():
                return evaluate_candidates(candidate_params, cv, more_results, **kw)

        run = super()._run_search
        if "callback_ctx" in signature(run).parameters:
            return run(evaluate, callback_ctx=callback_ctx)
        return run(evaluate)

    def _train_fused(self, candidates, cv):
        state = self._fused
        store = state["store"]
        X, y = indexable(state["X"], state["y"])
        routed = state["routed"]
        cv = cv or self._checked_cv_orig
        splits = list(cv.split(X, y, **routed.splitter.split))
        keys = [_candidate_key(p) for p in candidates]
        base = self.estimator.estimator
        # each fit's parameters (sample_weight...) as scikit-learn's
        # _fit_and_score slices them for the fold
        fold_params = [_check_method_params(X, params=routed.estimator.fit,
                                            indices=train) for train, _ in splits]
        plan = _plan(base, candidates, X, y, splits, keys, fold_params)
        n_workers = effective_n_jobs(state["n_jobs"])
        stacks = _split_stacks(plan, n_workers)
        if self.verbose > 0:
            print(_describe(stacks, plan))
        # the costliest stacks first, so that workers finish together
        cpu = sorted((s for s in stacks if str(s[0][1].est.device_) == "cpu"),
                     key=_cost, reverse=True)
        gpu = [s for s in stacks if str(s[0][1].est.device_) != "cpu"]
        tasks = [delayed(_safe_train_stack)([m for _, m in s], "cpu") for s in cpu]
        tasks += [delayed(_fit_single)(clone(est), X, y, splits[fold][0],
                                       fold_params[fold])
                  for (_, fold), est in plan.singles]
        outputs = Parallel(n_jobs=state["n_jobs"], pre_dispatch=self.pre_dispatch)(
            tasks) if tasks else []
        results = {}
        outs = list(zip(cpu, outputs[:len(cpu)]))
        for s in gpu:  # one stack per device at a time, in this process
            outs.append((s, _safe_train_stack([m for _, m in s], s[0][1].est.device_)))
        for s, out in outs:
            if isinstance(out, Exception):
                # a failure of the stacked trainer itself (not of a fit):
                # these fits take scikit-learn's path, one by one
                warnings.warn(f"sknn could not train {len(s)} fits as a stack "
                              f"({type(out).__name__}: {out}); they are fitted "
                              "one by one.", RuntimeWarning, stacklevel=3)
                continue
            results.update({fit_id: r for (fit_id, _), r in zip(s, out)})
        singles = outputs[len(cpu):len(cpu) + len(plan.singles)]
        results.update({fit_id: r for (fit_id, _), r in zip(plan.singles, singles)})
        for fit_id, (outcome, seconds) in results.items():
            if fit_id in plan.assemble and not isinstance(outcome, BaseException):
                est, prefix_steps = plan.assemble[fit_id]
                est = clone(est)
                est.steps = [*prefix_steps, (est.steps[-1][0], outcome)]
                results[fit_id] = (est, seconds)
        store.results.update(results)
        store.folds = [_fingerprint(*_safe_split(base, X, y, train))
                       for train, _ in splits]
        store.expected = [(k, fold) for k in keys for fold in range(len(splits))]
        store.cursor = 0

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        fused = getattr(self, "_fused", None)
        if fused is not None:
            for record, seconds in zip(out, fused["store"].fit_times):
                record["fit_time"] = seconds
        return super()._format_results(candidate_params, n_splits, out, more_results)


_NOTE = """
    sknn: the (candidate, fold) fits of an :class:`~sknn.MLPClassifierTorch` or
    an :class:`~sknn.MLPRegressorTorch`, or of a Pipeline ending in one, train
    together as stacked networks, each the fit it would be alone; every other
    fit, the scoring and the refit are scikit-learn's. See the "Searching
    architectures" page. scikit-learn's documentation follows.
"""


class GridSearchCV(_FusedSearch, _sk.GridSearchCV):
    __doc__ = _NOTE + (_sk.GridSearchCV.__doc__ or "")


class RandomizedSearchCV(_FusedSearch, _sk.RandomizedSearchCV):
    __doc__ = _NOTE + (_sk.RandomizedSearchCV.__doc__ or "")


__all__ = ["GridSearchCV", "RandomizedSearchCV"]
