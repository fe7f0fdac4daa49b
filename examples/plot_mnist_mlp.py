"""
=======================================
MNIST with a 784-512-10 MLP and curves
=======================================

The "hello world" of the Keras tutorials: flatten the 28x28 digits to 784
pixels scaled to [0, 1], one hidden layer of 512 ReLU units, a 10-way softmax,
Adam, and the training/validation learning curves drawn from the estimator's
``history_`` with :func:`sknn.plotting.plot_history`.

The pixels are scaled by a :class:`~sknn.preprocessing.PixelScaler` inside the
Pipeline, so the fitted model takes raw images as
:func:`~sknn.datasets.load_digits_or_mnist` returns them.
"""

# %%
# Load the data
# -------------
# MNIST when ``SKNN_MNIST`` names a copy, else scikit-learn's 8x8 digits.
import os

import matplotlib.pyplot as plt
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.plotting import plot_history
from sknn.preprocessing import PixelScaler

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"  # seconds-long run for the tests

data = load_digits_or_mnist()
X, y = data.images, data.target
if TINY:
    X, _, y, _ = train_test_split(X, y, train_size=400, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)
print(f"{data.source}: {len(X_train)} training and {len(X_test)} test images "
      f"of {X.shape[1]}x{X.shape[2]} pixels")

# %%
# Fit the 784-512-10 network
# --------------------------
# ``early_stopping=True`` holds out 10% of the training set and records the
# validation loss and accuracy after every epoch; ``n_iter_no_change`` is set
# high so that all epochs run and the curves are complete.
model = make_pipeline(
    PixelScaler(max_value=data.max_value),  # Keras: X.reshape(n, -1) / 255
    MLPClassifierTorch(hidden_layer_sizes=(512,), solver="adam",
                       max_iter=2 if TINY else 15, batch_size=128,
                       early_stopping=True, n_iter_no_change=100,
                       random_state=0),
)
model.fit(X_train, y_train)
for row in model[-1].history_:
    print(f"epoch {row['epoch']:2d}  loss {row['loss']:.4f}  "
          f"accuracy {row['accuracy']:.4f}  val_loss {row['val_loss']:.4f}  "
          f"val_accuracy {row['val_accuracy']:.4f}")

# %%
# Evaluate on the held-out images
# -------------------------------
print(f"test accuracy: {model.score(X_test, y_test):.4f}")
print(classification_report(y_test, model.predict(X_test), zero_division=0))

# %%
# Learning curves
# ---------------
fig = plot_history(model)
plt.show()
