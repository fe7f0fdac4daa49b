"""
====================================================
Save with joblib, load and predict in a new process
====================================================

Keras users call ``model.save`` and ``load_model``. A fitted sknn estimator
(or a whole Pipeline) is a plain scikit-learn object: ``joblib.dump`` saves
it, and ``joblib.load`` in a fresh Python process gives back a model with
identical predictions, with no need to rebuild the network first. A model
fitted on a GPU loads on a CPU-only machine.

Put every preparation step in the Pipeline, the pixel scaling included
(:class:`~sknn.preprocessing.PixelScaler`), and the saved file is the whole
recipe: the process that loads it feeds raw images, exactly as the loader
returned them, with nothing to remember.
"""

# %%
# Fit and save
# ------------
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn.datasets import load_digits_or_mnist
from sknn.preprocessing import PixelScaler

TINY = os.environ.get("SKNN_EXAMPLE_TINY") == "1"

data = load_digits_or_mnist()  # MNIST when SKNN_MNIST names a copy, else digits
X, y = data.images, data.target
if TINY:
    X, _, y, _ = train_test_split(X, y, train_size=300, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)

model = make_pipeline(PixelScaler(max_value=data.max_value), StandardScaler(),
                      MLPClassifierTorch(hidden_layer_sizes=(64,),
                                         max_iter=3 if TINY else 20,
                                         random_state=0))
model.fit(X_train, y_train)

workdir = tempfile.TemporaryDirectory()
model_path = Path(workdir.name) / "model.joblib"
data_path = Path(workdir.name) / "X_test.npy"
joblib.dump(model, model_path)
np.save(data_path, X_test)  # raw images, not scaled
print(f"saved {model_path.name}: {model_path.stat().st_size / 1024:.0f} KiB")

# %%
# Load and predict in a fresh Python process
# ------------------------------------------
# The new process imports neither sknn's classes nor any scaling code by hand:
# the pickle names them, and the Pipeline scales the raw images itself.
code = f"""
import joblib, numpy as np
model = joblib.load({str(model_path)!r})
X = np.load({str(data_path)!r})
np.save({str(data_path.with_name('pred.npy'))!r}, model.predict_proba(X))
print(type(model[-1]).__name__, "loaded on", model[-1].device_)
"""
run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                     check=True)
print(f"fresh process: {run.stdout.strip()}")
proba_there = np.load(data_path.with_name("pred.npy"))
proba_here = model.predict_proba(X_test)
print(f"identical predict_proba: {np.array_equal(proba_here, proba_there)}")
labels_there = model.classes_[proba_there.argmax(axis=1)]
print(f"identical labels: {np.array_equal(labels_there, model.predict(X_test))}")
print(f"test accuracy: {np.mean(labels_there == y_test):.4f}")
workdir.cleanup()
