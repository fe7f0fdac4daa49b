"""The names users pass as strings, without importing torch.

The estimators' parameter constraints are built from these tuples, so that
``MLPClassifierTorch()``, ``get_params``, ``clone`` and ``repr`` work before
torch is imported; ``sknn._modules`` maps the same names to torch factories
(``tests/test_modules.py`` checks that the two agree).
"""

#: hidden-layer activations (scikit-learn's names)
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")

#: weight initialisers: scikit-learn's scheme ('auto'), Keras' names, torch's
WEIGHT_INITS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform",
                "he_normal", "truncated_normal", "torch")

#: the solvers; the stochastic ones train by minibatches and have partial_fit
SOLVERS = ("adam", "sgd", "lbfgs")
STOCHASTIC_SOLVERS = ("adam", "sgd")

#: training precisions: float32 weights throughout, autocast for the others
PRECISIONS = ("float32", "bfloat16", "float16", "auto")

#: CNN paddings: 'same' and 'valid' as in Keras; 'auto' is 'valid' where the
#: whole stack fits the images, else 'same' (``sknn._modules.resolve_padding``)
PADDINGS = ("auto", "same", "valid")
