"""
==================================================
One-hot (LabelBinarizer) targets in a Pipeline
==================================================

Keras tutorials one-hot encode the labels with ``LabelBinarizer`` (or
``to_categorical``) because a softmax network trained with categorical
cross-entropy wants them that way, then call ``lb.inverse_transform`` on the
predictions. sknn accepts that 0/1 matrix as ``y`` and returns predictions in
the same format, so the round trip works unchanged, inside a Pipeline and with
string labels.
"""

# %%
# One-hot targets
# ---------------
import os

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.preprocessing import PixelScaler

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

data = load_digits_or_mnist()  # MNIST when SKNN_MNIST names a copy, else digits
X, digit = data.images, data.target
names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                  "eight", "nine"])
labels = names[digit]
if TINY:
    X, _, labels, _ = train_test_split(X, labels, train_size=300, stratify=labels,
                                       random_state=0)
X_train, X_test, labels_train, labels_test = train_test_split(
    X, labels, test_size=0.25, stratify=labels, random_state=0)

lb = LabelBinarizer()
Y_train = lb.fit_transform(labels_train)
print(f"lb.classes_: {lb.classes_.tolist()}")
print(f"Y_train: shape {Y_train.shape}, first row {Y_train[0]} "
      f"= {str(labels_train[0])!r}")

# %%
# Fit on the one-hot matrix, predict one-hot rows
# -----------------------------------------------
model = make_pipeline(PixelScaler(max_value=data.max_value), StandardScaler(),
                      MLPClassifierTorch(hidden_layer_sizes=(128,),
                                         max_iter=3 if TINY else 20,
                                         random_state=0))
model.fit(X_train, Y_train)
Y_pred = model.predict(X_test)
print(f"predict returns {Y_pred.shape} {Y_pred.dtype} rows, e.g. {Y_pred[0]}")
print(f"each row has exactly one 1: {bool((Y_pred.sum(axis=1) == 1).all())}")

# %%
# Back to labels
# --------------
pred_labels = lb.inverse_transform(Y_pred)
print(f"first predictions: {pred_labels[:5].tolist()}")
print(f"accuracy after the round trip: {np.mean(pred_labels == labels_test):.4f}")
proba = model.predict_proba(X_test)
agree = np.array_equal(lb.classes_[proba.argmax(axis=1)], pred_labels)
print(f"predict_proba columns follow lb.classes_: {agree}")
