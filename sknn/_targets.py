"""TargetEncoder: classification targets <-> what the network's loss consumes.

This module does not import torch, so it can be used and tested on its own.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

#: target kind -> (output activation as scikit-learn names it, network output).
#: The network output is what the net computes and its loss:
#: 'multiclass' one logit per class (softmax cross-entropy on class indices),
#: 'binary' one logit (sigmoid, binary cross-entropy), 'multilabel' one logit
#: per label (a sigmoid each), 'continuous' one output per target column
#: (identity, half squared error), 'poisson' one log-rate per column (exp,
#: half Poisson deviance). ``sknn._net.OUTPUTS`` maps each to torch.
KINDS = {
    "binary": ("logistic", "binary"),
    "multiclass": ("softmax", "multiclass"),
    "onehot": ("softmax", "multiclass"),
    "multilabel": ("logistic", "multilabel"),
    # regression (MLPRegressorTorch): the kind follows its ``loss``
    "continuous": ("identity", "continuous"),
    "poisson": ("exp", "poisson"),
}

#: the KINDS of regression targets: a network output trained by skorch's
#: NeuralNetRegressor, with no classes
REGRESSION_KINDS = ("continuous", "poisson")


class TargetEncoder(TransformerMixin, BaseEstimator):
    """Encode classification targets for a neural network and decode predictions.

    Public as ``sknn.preprocessing.TargetEncoder``; it is what the estimators
    fit as ``target_encoder_``. Not to be confused with scikit-learn's
    ``sklearn.preprocessing.TargetEncoder``, which encodes categorical
    features by their target means.

    The kind of target is learnt in :meth:`fit`:

    - ``'binary'``: 1-D labels with two classes; one logit, trained with a
      sigmoid and binary cross-entropy (as scikit-learn's MLP does). 1-D
      labels of a single class are 'binary' too, as in scikit-learn: every
      sample is encoded 0 and every prediction is that class.
    - ``'multiclass'``: 1-D labels with more than two classes; one logit per
      class, softmax cross-entropy.
    - ``'onehot'``: a 2-D 0/1 matrix with exactly one 1 in every row, as
      ``LabelBinarizer.fit_transform`` returns for three or more classes;
      trained as multiclass softmax and answered again as one-hot rows.
    - ``'multilabel'``: any other 2-D 0/1 indicator matrix; one independent
      sigmoid per column.

    Parameters
    ----------
    classes : array-like or None, default=None
        All classes, for :meth:`partial_fit`-style use where ``y`` may not show
        every class. Ignored for 2-D indicator targets.

    Attributes
    ----------
    classes_ : ndarray
        Sorted class labels (1-D targets) or column indices (2-D targets).
    kind_ : {'binary', 'multiclass', 'onehot', 'multilabel'}
        The kind of target seen in ``fit``.
    n_outputs_ : int
        Number of network outputs: 1 for binary, else the number of columns.
    out_activation_ : {'logistic', 'softmax'}
        The output activation, named as scikit-learn's MLP names it.
    """

    def __init__(self, classes=None):
        self.classes = classes

    @staticmethod
    def _as_array(y):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            # a column vector: handled as scikit-learn handles one
            y = column_or_1d(y, warn=True)
        return y

    def fit(self, y):
        """Learn the kind of target and its classes from ``y``."""
        y = self._as_array(y)
        if y.ndim == 2:
            if type_of_target(y) != "multilabel-indicator":
                raise ValueError(
                    "A 2-D y must be a 0/1 indicator matrix (one-hot rows from "
                    "LabelBinarizer, or multilabel rows); got values "
                    f"{np.unique(y)[:5].tolist()}. Pass 1-D labels instead."
                )
            self.classes_ = np.arange(y.shape[1])
            row_sums = np.asarray(y).sum(axis=1)
            self.kind_ = "onehot" if np.all(row_sums == 1) else "multilabel"
        else:
            check_classification_targets(y)
            labels = y if self.classes is None else np.asarray(self.classes)
            self.classes_ = _as_label_array(np.unique(labels))
            self.kind_ = "binary" if len(self.classes_) <= 2 else "multiclass"
        if self.kind_ == "multilabel" and y.shape[1] < 1:
            raise ValueError("A multilabel y needs at least one column.")
        self.out_activation_ = KINDS[self.kind_][0]
        self.n_outputs_ = 1 if self.kind_ == "binary" else len(self.classes_)
        return self

    @property
    def output_kind(self):
        """The network output for this target: 'multiclass', 'binary' or
        'multilabel' (see :data:`KINDS`)."""
        return KINDS[self.kind_][1]

    @property
    def loss_family(self):
        """'ce' (softmax cross-entropy on int64 indices) or 'bce' (sigmoids on a
        float32 matrix)."""
        return "ce" if self.output_kind == "multiclass" else "bce"

    def transform(self, y):
        """Encode ``y``: int64 class indices, or a float32 (n, n_outputs) matrix."""
        check_is_fitted(self)
        y = self._as_array(y)
        if self.kind_ in ("onehot", "multilabel"):
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y must be an indicator matrix with {len(self.classes_)} "
                    f"columns, as in fit; got shape {y.shape}."
                )
            y = np.asarray(y)
            if self.kind_ == "onehot":
                if not np.all(y.sum(axis=1) == 1):
                    raise ValueError(
                        "The estimator was fitted on one-hot rows; every row of y "
                        "must have exactly one 1."
                    )
                return y.argmax(axis=1).astype(np.int64)
            return y.astype(np.float32)
        if y.ndim != 1:
            raise ValueError(
                f"The estimator was fitted on 1-D labels; got y of shape {y.shape}."
            )
        indices = np.searchsorted(self.classes_, y)
        indices = np.clip(indices, 0, len(self.classes_) - 1)
        unknown = self.classes_[indices] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not seen in fit: {np.unique(y[unknown]).tolist()}"
                f"; known classes are {self.classes_.tolist()}."
            )
        if self.kind_ == "binary":
            return indices.astype(np.float32).reshape(-1, 1)
        return indices.astype(np.int64)

    def class_indices(self, y_encoded):
        """Class indices (1-D int) of encoded single-label targets."""
        y_encoded = np.asarray(y_encoded)
        if self.kind_ == "binary":
            return y_encoded.reshape(-1).astype(np.int64)
        return y_encoded

    def inverse_transform(self, proba):
        """Decode ``predict_proba`` rows ((n, 2) for binary, (n, n_classes)
        otherwise) into y's own format: labels, one-hot rows or multilabel
        rows."""
        check_is_fitted(self)
        proba = np.asarray(proba)
        if self.kind_ == "multilabel":
            return (proba > 0.5).astype(np.int64)
        winners = proba.argmax(axis=1)
        if len(self.classes_) == 1:
            winners = np.zeros_like(winners)
        if self.kind_ == "onehot":
            onehot = np.zeros((len(winners), len(self.classes_)), dtype=np.int64)
            onehot[np.arange(len(winners)), winners] = 1
            return onehot
        return self.classes_[winners]


def _as_label_array(classes):
    """String classes as a NumPy string array (``<U``), as scikit-learn's
    ``unique_labels`` returns them for object input."""
    if classes.dtype == object and all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    return classes


def sample_weights(encoder, y_encoded, sample_weight, class_weight):
    """Per-sample weights from ``sample_weight`` and ``class_weight``, or None
    when every sample weighs the same (so that the loss skips the weighting).

    ``class_weight`` ('balanced' or a dict keyed by class label or, for 2-D
    targets, column index) applies to single-label targets, as in
    scikit-learn; for multilabel targets it is computed column by column, as
    ``compute_sample_weight`` does for multi-output y.
    """
    weight = None
    if class_weight is not None:
        labels = (encoder.class_indices(y_encoded) if encoder.kind_ != "multilabel"
                  else y_encoded)
        if encoder.kind_ in ("binary", "multiclass"):
            labels = encoder.classes_[labels]
        weight = compute_sample_weight(class_weight, labels)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        weight = sample_weight if weight is None else weight * sample_weight
    if weight is None or np.all(weight == weight.flat[0]) and weight.flat[0] > 0:
        return None
    return weight.astype(np.float32)
