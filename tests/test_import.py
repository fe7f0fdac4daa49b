"""``import sknn`` defers torch and skorch until a model needs them."""

import subprocess
import sys
import textwrap


def run(code):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_estimators_import_clone_and_repr_without_torch():
    out = run("""
        import sys
        from sklearn.base import clone
        from sknn import CNNClassifier, MLPClassifierTorch
        for est in (MLPClassifierTorch(hidden_layer_sizes=(5,)), CNNClassifier()):
            clone(est).set_params(alpha=0.1)
            repr(est)
            est.get_params()
        print(sorted(m for m in ("torch", "skorch") if m in sys.modules))
    """)
    assert out == "[]"


def test_command_line_help_without_torch_or_sklearn():
    out = run("""
        import contextlib, io, sys
        from sknn.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as help_text:
            main(["--help"])
        assert "train" in help_text.getvalue()
        print(sorted(m for m in ("torch", "skorch", "sklearn") if m in sys.modules))
    """)
    assert out == "[]"


def test_import_sknn_imports_its_names_on_first_use():
    out = run("""
        import sys
        import sknn
        heavy = sorted(m for m in ("torch", "skorch", "sklearn", "onnx")
                       if m in sys.modules)
        assert "MLPClassifierTorch" in dir(sknn)
        print(heavy, sknn.MLPClassifierTorch.__name__, "sklearn" in sys.modules)
    """)
    assert out == "[] MLPClassifierTorch True"


def test_fitting_imports_torch_on_demand():
    out = run("""
        import sys
        import numpy as np
        from sknn import MLPClassifierTorch
        X = np.random.RandomState(0).normal(size=(20, 3))
        MLPClassifierTorch(max_iter=2, device="cpu").fit(X, np.arange(20) % 2)
        print("torch" in sys.modules, "skorch" in sys.modules)
    """)
    assert out == "True True"
