"""
=========================================================
A deeper 256-128-64-32-10 MLP, Adam lr=0.01, validation
=========================================================

The Keras tutorial stacks four ReLU layers of 256, 128, 64 and 32 units, trains
with ``Adam(learning_rate=0.01)`` and passes ``validation_data`` so that the
validation loss and accuracy are reported after every epoch. In sknn the same
network is ``hidden_layer_sizes=(256, 128, 64, 32)`` with
``learning_rate_init=0.01``; ``early_stopping=True`` sets aside
``validation_fraction`` of the training data and evaluates it every epoch (the
best epoch's weights are kept, as in scikit-learn).
"""

# %%
# Data: MNIST when at hand, else scikit-learn's digits
# ----------------------------------------------------
import os

import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.plotting import plot_history
from sknn.preprocessing import PixelScaler

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

data = load_digits_or_mnist()
X, y = data.images, data.target
if TINY:
    X, _, y, _ = train_test_split(X, y, train_size=400, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=0)

# %%
# The network, with validation after each epoch
# ---------------------------------------------
model = make_pipeline(
    PixelScaler(max_value=data.max_value),
    StandardScaler(),
    MLPClassifierTorch(hidden_layer_sizes=(256, 128, 64, 32), solver="adam",
                       learning_rate_init=0.01, batch_size=64,
                       max_iter=2 if TINY else 20, early_stopping=True,
                       validation_fraction=0.1, n_iter_no_change=100,
                       random_state=0),
)
model.fit(X_train, y_train)
clf = model[-1]
print("epoch   loss    acc  val_loss val_acc")
for row in clf.history_:
    print(f"{row['epoch']:5d} {row['loss']:6.3f} {row['accuracy']:6.3f} "
          f"{row['val_loss']:8.3f} {row['val_accuracy']:7.3f}")
print(f"best validation accuracy: {clf.best_validation_score_:.4f}")
print(f"test accuracy: {model.score(X_test, y_test):.4f}")

# %%
# :func:`~sknn.plotting.plot_history` accepts the Pipeline and plots its final
# step. With lr=0.01 the validation loss typically bottoms out early and then
# rises while the training loss keeps falling: the usual sign of overfitting.
plot_history(model)
plt.show()
