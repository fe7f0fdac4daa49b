"""
====================================
A Conv32-64-64 CNN on MNIST images
====================================

The Keras CNN tutorial: three 3x3 convolutions with 32, 64 and 64 filters, max
pooling after the first two, a dense layer of 64 units and a 10-way softmax.
:class:`sknn.CNNClassifier` builds exactly this network by default
(``conv_filters=(32, 64, 64)``, ``dense_layer_sizes=(64,)``) and takes the
images in the Keras layout, ``(n_samples, height, width, channels)``.

The images come from :func:`~sknn.datasets.load_digits_or_mnist`: MNIST's
28x28 digits when ``SKNN_MNIST`` names a copy, else scikit-learn's 8x8 digits.
The default ``padding='auto'`` gives MNIST the tutorial's 'valid' 3x3
convolutions (93,322 parameters) and pads the 8x8 digits ('same') so that they
stay valid through the stack; ``padding_`` says which.
"""

# %%
# Images in the Keras (channels-last) layout
# ------------------------------------------
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from sknn import CNNClassifier
from sknn.datasets import load_digits_or_mnist
from sknn.plotting import plot_history

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

data = load_digits_or_mnist()
# (N, height, width, 1) in [0, 1], as Keras' x_train[..., np.newaxis] / 255
X = (data.images[..., np.newaxis] / data.max_value).astype(np.float32)
y = data.target
if TINY:
    X, _, y, _ = train_test_split(X, y, train_size=160, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)
print(f"images: {X_train.shape} for training, {X_test.shape} for testing")

# %%
# The network and its training
# ----------------------------
# Five epochs on MNIST, as in the tutorial: about 740 batches of 64 an epoch
# (``early_stopping=True`` keeps a tenth of the training images for the
# validation scores). The 8x8 digits make only 19 batches an epoch: they get
# 15 epochs.
epochs = 5 if data.source.startswith("MNIST") else 15
clf = CNNClassifier(conv_filters=(32, 64, 64), kernel_size=3, pool_size=2,
                    dense_layer_sizes=(64,), solver="adam", batch_size=64,
                    max_iter=1 if TINY else epochs, early_stopping=True,
                    n_iter_no_change=100, random_state=0)
clf.fit(X_train, y_train)
for row in clf.history_:
    print(f"epoch {row['epoch']}: loss {row['loss']:.4f}, accuracy "
          f"{row['accuracy']:.4f}, val_accuracy {row['val_accuracy']:.4f}, "
          f"{row['duration']:.1f} s")
print(f"test accuracy: {clf.score(X_test, y_test):.4f}")

# %%
# The network it built
# --------------------
# The fitted torch module is ``clf.net_.module_``; ``padding_`` says what
# ``padding='auto'`` chose for these images.
n_weights = sum(p.numel() for p in clf.net_.module_.parameters())
print(f"padding_: {clf.padding_!r}, {n_weights:,} parameters")
print(clf.net_.module_)

# %%
# Learning curves
# ---------------
plot_history(clf)
plt.show()

# %%
# The confusion matrix on the test images
# ---------------------------------------
ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test)
plt.show()
