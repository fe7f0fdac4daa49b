"""scikit-learn's callbacks (``sklearn.callback``, experimental in 1.9) on sknn
estimators: the one module that knows that API, because it may change
without deprecation.

With scikit-learn 1.9 and later, ``est.set_callbacks(...)`` (from
``CallbackSupportMixin``) registers callbacks such as ``ProgressBar`` and
``ScoringMonitor``; set on a meta-estimator (``GridSearchCV``, ``Pipeline``),
the auto-propagated ones reach the sknn estimator inside. A fit reports:

- one root task, ``fit`` (or ``partial_fit``), with ``max_subtasks`` the
  epochs it plans (``max_iter``; 1 for ``partial_fit`` and for L-BFGS, whose
  one skorch epoch is the whole optimization), begun once the data are
  validated and ended once the fitted attributes are set;
- one subtask per epoch, ``epoch``, with task ids 0, 1... in the order they
  run. Its begin and end hooks get the fit's (validated) X and y, the
  ``sample_weight`` as metadata, and, for callbacks that ask for a
  ``fitted_estimator``, a copy of the estimator as it is then: the weights
  (copied on demand, only when a callback asks), ``n_iter_``, ``loss_curve_``,
  ``loss_``, ``history_`` (and, with early stopping, ``validation_scores_``
  and ``best_validation_score_``) up to that epoch, and the layer attributes;
- a callback's request to stop (``on_fit_task_end`` returning True) ends
  training after that epoch, once every skorch callback has seen it, as a
  normal stop: skorch's ``EarlyStopping`` stops the same way.

With an older scikit-learn, :class:`CallbackSupportMixin` is an empty class
and :func:`with_callbacks` returns the method unchanged: nothing changes.

The epoch hooks run in a skorch callback, ``"sklearn_callbacks"``, which
``sknn._training`` adds beside the progress bar; ``"sklearn_callbacks_stop"``,
added after every other callback, ends training when one asked to. A fit
without scikit-learn callbacks passes through both at the cost of an
attribute check per epoch.
"""

import copy
from contextlib import contextmanager
from contextvars import ContextVar

try:
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # scikit-learn < 1.9
    AVAILABLE = False

    class CallbackSupportMixin:
        """scikit-learn < 1.9 has no callbacks: nothing to add."""

    def with_callbacks(method):
        return method
else:
    AVAILABLE = True

#: the sknn fit running in this thread (or task) with scikit-learn callbacks
_RUN = ContextVar("sknn_sklearn_callback_run", default=None)


class _Run:
    """What the epoch hooks need of the fit that runs."""

    def __init__(self, est, context, X, y, metadata):
        self.est = est
        self.context = context
        self.hook_kwargs = {"estimator": est, "X": X, "y": y, "metadata": metadata}
        # the net this fit trains: the first to begin training inside it
        self.net = None


def _listening(est):
    return AVAILABLE and (bool(getattr(est, "_skl_callbacks", None))
                          or hasattr(est, "_parent_callback_ctx"))


def planned_epochs(est, incremental):
    """The epochs a fit plans: those of ``sknn._training.fit``."""
    from sknn._options import STOCHASTIC_SOLVERS

    return est.max_iter if est.solver in STOCHASTIC_SOLVERS and not incremental else 1


@contextmanager
def fit_task(est, X, y, sample_weight, incremental):
    """The root task of a fit of ``est`` on validated ``X`` and ``y``.

    Without scikit-learn callbacks (none set on ``est``, none propagated to
    it, or a scikit-learn without ``sklearn.callback``) it does nothing.
    Otherwise it sets up the callbacks, calls the root task's begin hooks,
    lets the epochs of the fit inside find it, and calls its end hooks (with
    the fitted estimator) once the fit has returned.
    """
    if not _listening(est):
        yield
        return
    context = est._init_callback_context(
        task_name="partial_fit" if incremental else "fit",
        max_subtasks=planned_epochs(est, incremental))
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    run = _Run(est, context, X, y, metadata)
    context.call_on_fit_task_begin(**run.hook_kwargs)
    token = _RUN.set(run)
    try:
        yield
    finally:
        _RUN.reset(token)
        # the fitted net keeps no reference to the data or the estimator
        for _, cb in getattr(est.__dict__.get("net_"), "callbacks_", ()):
            if type(cb).__name__ == "SklearnCallbacks":
                cb.run_ = cb.task_ = None
    context.call_on_fit_task_end(**run.hook_kwargs, reconstruction_attributes={})


def snapshot_attributes(est, net):
    """The fitted attributes that make a copy of ``est`` predict, score and
    describe itself as the fit is now: a frozen copy of ``net_`` (its weights
    copied; no optimizer) and the history up to the last finished epoch."""
    from skorch.history import History

    from sknn._fitted import history_record

    frozen = type(net).__new__(type(net))
    frozen.__dict__.update(net.__dict__)
    module = copy.deepcopy(net.module_)
    frozen.__dict__["module_"] = module
    if net.__dict__.get("module") is net.module_:
        frozen.__dict__["module"] = module
    frozen.__dict__["optimizer_"] = None
    # what sknn._training.fit clears when a fit ends: the validation split,
    # and the shuffling RNG
    for key in ("train_split", "iterator_train__generator"):
        if key in frozen.__dict__:
            frozen.__dict__[key] = None
    rows = [row for row in net.history if "train_loss" in row]
    frozen.__dict__["history_"] = History(rows)
    loss_curve = [float(row["train_loss"]) for row in rows]
    # n_iter_ counts the epochs of this fit, as the estimator's does
    n_iter = getattr(net, "epochs_run_", len(rows))
    attrs = {"net_": frozen, "n_iter_": n_iter, "loss_curve_": loss_curve,
             "loss_": loss_curve[-1] if loss_curve else float("nan"),
             "history_": [history_record(row) for row in rows]}
    key = next((k for k in ("valid_acc", "valid_r2") if rows and k in rows[-1]),
               None)
    if key is not None:  # early stopping: a classifier's or a regressor's score
        scores = [float(row[key]) for row in rows]
        attrs.update(validation_scores_=scores, best_validation_score_=max(scores))
    # the architecture attributes (coefs_...) as the estimator derives them
    scratch = type(est).__new__(type(est))
    scratch.__dict__.update(est.__dict__)
    scratch.__dict__["net_"] = frozen
    scratch._set_layer_attributes()
    before = vars(est)
    attrs.update({key: value for key, value in vars(scratch).items()
                  if key not in attrs and key.endswith("_")
                  and before.get(key, None) is not value})
    return attrs


# ------------------------------------------------------- the skorch side
# The classes below subclass skorch's Callback, and skorch imports torch:
# they are defined on first use, since this module is imported with the
# estimators' classes, which must not import torch.
_SKORCH_SIDE = ("SklearnCallbacks", "StopAtEpochEnd")


def __getattr__(name):
    if name in _SKORCH_SIDE:
        if name not in globals():
            _define_skorch_side()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _define_skorch_side():
    from skorch.callbacks import Callback

    class SklearnCallbacks(Callback):
        """Reports each epoch of a fit to scikit-learn's callbacks as a
        subtask of the fit's root task, and notes a request to stop.

        Attributes
        ----------
        stop_requested_ : bool
            A callback asked to stop at the end of the last epoch.
        stop_reason_ : str or None
            Why training stopped early, when a callback asked.
        """

        def initialize(self):
            self.run_ = self.task_ = None
            self.stop_requested_ = False
            self.stop_reason_ = None
            return self

        def on_train_begin(self, net, **kwargs):
            run = _RUN.get()
            # this fit's net: the first to train inside the fit's task (the
            # estimator is assigned its net only when training has ended)
            if run is not None and run.net is None:
                run.net = net
            self.run_ = run if run is not None and run.net is net else None
            self.task_ = None
            self.stop_requested_ = False
            self.stop_reason_ = None

        def _reconstruction(self, net):
            est = self.run_.est
            return lambda: snapshot_attributes(est, net)

        def on_epoch_begin(self, net, **kwargs):
            if self.run_ is None:
                return
            self.task_ = self.run_.context.subcontext(task_name="epoch")
            self.task_.call_on_fit_task_begin(
                **self.run_.hook_kwargs,
                reconstruction_attributes=self._reconstruction(net))

        def on_epoch_end(self, net, **kwargs):
            if self.task_ is None:
                return
            task, self.task_ = self.task_, None
            if task.call_on_fit_task_end(
                    **self.run_.hook_kwargs,
                    reconstruction_attributes=self._reconstruction(net)):
                self.stop_requested_ = True
                epoch = task.task_id + 1
                self.stop_reason_ = (
                    f"a scikit-learn callback asked to stop after epoch {epoch} "
                    "of this fit.")

        def on_train_end(self, net, **kwargs):
            if self.task_ is not None:
                # an epoch that did not finish (Ctrl-C): ended as an empty task
                self.task_.call_on_fit_task_end(estimator=self.run_.est)
            self.run_ = self.task_ = None

        def __getstate__(self):
            state = self.__dict__.copy()
            state["run_"] = state["task_"] = None
            return state

    class StopAtEpochEnd(Callback):
        """Ends training when a scikit-learn callback asked to, after every
        other callback has seen the epoch: a normal stop, as skorch's
        ``EarlyStopping`` makes."""

        def on_epoch_end(self, net, **kwargs):
            for _, cb in net.callbacks_:
                if isinstance(cb, SklearnCallbacks) and cb.stop_requested_:
                    raise KeyboardInterrupt

    for cls in (SklearnCallbacks, StopAtEpochEnd):
        # picklable by name, as if defined at the top of the module
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


def add_net_callbacks(first, last):
    """Add the skorch callbacks that report a fit's epochs to scikit-learn's
    callbacks to the ``first`` and ``last`` callbacks of ``sknn._training``
    (nothing with a scikit-learn without ``sklearn.callback``)."""
    if not AVAILABLE:
        return
    if "SklearnCallbacks" not in globals():
        _define_skorch_side()
    first["sklearn_callbacks"] = globals()["SklearnCallbacks"]()
    last["sklearn_callbacks_stop"] = globals()["StopAtEpochEnd"]()


__all__ = ["AVAILABLE", "CallbackSupportMixin", "add_net_callbacks", "fit_task",
           "planned_epochs", "snapshot_attributes", "with_callbacks"]
