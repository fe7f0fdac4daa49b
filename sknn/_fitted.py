"""The translation of a fitted net's history into scikit-learn's fitted
attributes (``loss_curve_``, ``validation_scores_``...) and the warnings that
end a fit, as scikit-learn's MLP sets and emits them (``sknn._training.fit``
returns them in its ``FitResult``)."""

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sknn._net import check_finite_weights


def history_record(row):
    """One epoch of skorch history as the ``history_`` record users read."""
    record = {"epoch": int(row["epoch"]), "loss": float(row["train_loss"])}
    if "train_acc" in row:  # classification
        record["accuracy"] = float(row["train_acc"])
    record["duration"] = float(row.get("dur", float("nan")))
    if "valid_loss" in row:
        record["val_loss"] = float(row["valid_loss"])
        for key, name in (("valid_acc", "val_accuracy"), ("valid_r2", "val_r2")):
            if key in row:
                record[name] = float(row[key])
    return record


def running_best(values, higher):
    """scikit-learn's ``best_validation_score_`` (``higher``) or ``best_loss_``:
    from -inf (inf), replaced by each value strictly better. A NaN never is,
    so the best is that of the finite values (Python's ``max`` would return a
    leading NaN)."""
    best = -np.inf if higher else np.inf
    for value in values:
        if (value > best) if higher else (value < best):
            best = value
    return best


def fitted_attributes(net, config, interrupted):
    """scikit-learn's fitted attributes from the net and its history, and the
    warnings that end the fit, as scikit-learn's.

    Returns
    -------
    attributes : dict
        ``n_iter_``, ``loss_curve_``, ``loss_``, ``t_``, ``best_loss_``,
        ``validation_scores_``, ``best_validation_score_``, ``history_``.
    warnings : list of (message, category)
    """
    c = config
    # epochs that ran to their end: a Ctrl-C can stop one midway
    history = [row for row in net.history if "train_loss" in row]
    n_iter = net.epochs_run_
    lbfgs_state = {}
    if not c.stochastic:
        lbfgs_state = net.optimizer_.state[net.optimizer_.param_groups[0]["params"][0]]
        n_iter = int(lbfgs_state.get("n_iter", 1))
    loss_curve = [float(row["train_loss"]) for row in history]
    stopping = dict(net.callbacks_).get("sklearn_stopping")
    attributes = {
        "n_iter_": n_iter,
        "loss_curve_": loss_curve,
        "loss_": loss_curve[-1] if history else np.nan,
        "t_": int(sum(row["train_samples"] for row in history)),
        "history_": [history_record(row) for row in history],
    }
    if c.validates:
        key = c.score_key
        scores = [float(row[key]) for row in history if key in row]
        attributes.update(best_loss_=None, validation_scores_=scores,
                          best_validation_score_=running_best(scores, higher=True))
    else:
        attributes.update(
            best_loss_=(stopping.best_ if stopping is not None
                        else running_best(loss_curve, higher=False)),
            validation_scores_=None, best_validation_score_=None)

    check_finite_weights(net.module_.parameters())
    stopped = stopping is not None and stopping.stop_reason_ is not None
    warnings = []
    if interrupted:
        warnings.append(("Training interrupted by user.", UserWarning))
    elif not c.stochastic:
        if n_iter >= c.max_iter or lbfgs_state.get("func_evals", 0) >= c.max_fun:
            warnings.append((
                "lbfgs failed to converge (status=1): STOP: TOTAL NO. OF "
                "ITERATIONS REACHED LIMIT. Increase the number of iterations "
                "(max_iter) or scale the data.", ConvergenceWarning))
    elif (not c.incremental and not stopped and n_iter == c.max_iter
          and (c.n_iter_no_change != np.inf or c.warm_start)):
        # a fresh fit with n_iter_no_change=np.inf asks for exactly max_iter
        # epochs (Keras' fit(epochs=...)): reaching them is the plan, not a
        # failure. A warm start continues an earlier optimisation, which
        # scikit-learn reports at max_iter whatever the patience (its own
        # test_mlp_warm_start_no_convergence, run in test_sklearn_mlp.py)
        warnings.append((
            f"Stochastic Optimizer: Maximum iterations ({c.max_iter}) reached "
            "and the optimization hasn't converged yet.", ConvergenceWarning))
    return attributes, warnings


__all__ = ["fitted_attributes", "running_best"]
