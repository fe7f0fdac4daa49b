"""
=======================================
MNIST with a 784-512-10 MLP and curves
=======================================

The "hello world" of the Keras tutorials: flatten the 28x28 digits to 784
pixels scaled to [0, 1], one hidden layer of 512 ReLU units, a 10-way softmax,
Adam, and the training/validation learning curves drawn from the estimator's
``history_`` with :func:`sknn.plotting.plot_history`.

The script reads MNIST from ``../shared/data/mnist`` when it is there (the
10,000-image test set, split 75/25 here) and falls back to scikit-learn's 8x8
digits otherwise.
"""

# %%
# Load the data
# -------------
import os
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split

from sknn import MLPClassifierTorch
from sknn.datasets import load_mnist
from sknn.plotting import plot_history

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"  # seconds-long run for the tests
MNIST_DIR = Path(os.environ.get("SKNN_MNIST_DIR", Path(__file__).resolve().parents[2]
                                / "shared" / "data" / "mnist"))

if (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
    (_, _), (images, y) = load_mnist(MNIST_DIR)
    X, source = images.reshape(len(images), -1) / 255.0, "MNIST"
else:
    digits = load_digits()
    X, y, source = digits.data / 16.0, digits.target, "sklearn digits"
if TINY:
    X, _, y, _ = train_test_split(X, y, train_size=400, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)
print(f"{source}: {X_train.shape[0]} training and {X_test.shape[0]} test images "
      f"of {X.shape[1]} pixels")

# %%
# Fit the 784-512-10 network
# --------------------------
# ``early_stopping=True`` holds out 10% of the training set and records the
# validation loss and accuracy after every epoch; ``n_iter_no_change`` is set
# high so that all epochs run and the curves are complete.
clf = MLPClassifierTorch(hidden_layer_sizes=(512,), solver="adam",
                         max_iter=2 if TINY else 15, batch_size=128,
                         early_stopping=True, n_iter_no_change=100,
                         random_state=0)
clf.fit(X_train, y_train)
for row in clf.history_:
    print(f"epoch {row['epoch']:2d}  loss {row['loss']:.4f}  "
          f"accuracy {row['accuracy']:.4f}  val_loss {row['val_loss']:.4f}  "
          f"val_accuracy {row['val_accuracy']:.4f}")

# %%
# Evaluate on the held-out images
# -------------------------------
print(f"test accuracy: {clf.score(X_test, y_test):.4f}")
print(classification_report(y_test, clf.predict(X_test), zero_division=0))

# %%
# Learning curves
# ---------------
fig = plot_history(clf)
plt.show()
