"""Parameter and attribute documentation shared by both estimators.

Each estimator's docstring is written out in its own module with the
placeholders ``{training_parameters}``, ``{torch_parameters}`` and
``{fitted_attributes}``, which :func:`fill_doc` replaces at class-definition
time. Only those names are replaced, so the docstrings keep their literal
braces (``{'adam', 'sgd'}``) without doubling them, and no other docstring is
parsed.
"""

TRAINING_PARAMETERS = """\
    solver : {'adam', 'sgd', 'lbfgs'}, default='adam'
        The solver for weight optimization.

        - 'adam': ``torch.optim.Adam`` (the stochastic optimizer of Kingma and
          Ba), with scikit-learn's ``beta_1``, ``beta_2`` and ``epsilon``.
        - 'sgd': ``torch.optim.SGD`` with ``momentum`` and Nesterov momentum.
        - 'lbfgs': ``torch.optim.LBFGS`` on the full batch with a strong Wolfe
          line search; converges fast on small data sets.

    alpha : float, default=0.0001
        Strength of the L2 regularization term, with scikit-learn's scaling:
        ``0.5 * alpha * ||W||^2 / batch_size`` is added to the mean batch loss.
        It applies to the weights of Linear and convolution layers, not to
        biases or batch-norm parameters.

    batch_size : int or 'auto', default='auto'
        Size of minibatches for the stochastic optimizers. 'auto' is
        ``min(200, n_samples)``. Not used by 'lbfgs'.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule. Only used when ``solver='sgd'``.

        - 'constant': ``learning_rate_init`` throughout.
        - 'invscaling': after each epoch the rate becomes
          ``learning_rate_init / (t + 1) ** power_t``, t the samples seen.
        - 'adaptive': kept constant while the training loss (or validation
          score) improves; after ``n_iter_no_change`` epochs without
          improvement it is divided by 5, and training stops once it is at
          most 1e-6.

    learning_rate_init : float, default=0.001
        The initial learning rate. Only used when solver='sgd' or 'adam'.

    power_t : float, default=0.5
        The exponent of 'invscaling'. Only used when solver='sgd'.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training data) for the
        stochastic solvers; maximum number of iterations for 'lbfgs'.

    shuffle : bool, default=True
        Whether to shuffle samples in each epoch. Only used when solver='sgd'
        or 'adam'.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, dropout, shuffling and the validation
        split. An int makes fits reproducible on the CPU. Fitting draws torch's
        seed inside a forked RNG, so torch's global random state is left as it
        was.

    tol : float, default=1e-4
        Tolerance for the optimization. When the loss or score is not improving
        by at least ``tol`` for ``n_iter_no_change`` consecutive epochs,
        training stops (or, with ``learning_rate='adaptive'``, the learning rate
        is divided by 5).

    verbose : bool, default=False
        Whether to print progress messages to stdout, one line per epoch.

    warm_start : bool, default=False
        When True, reuse the solution of the previous call to fit as
        initialization; otherwise erase the previous solution.

    momentum : float, default=0.9
        Momentum for gradient descent update. Should be between 0 and 1. Only
        used when solver='sgd'.

    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum. Only used when solver='sgd' and
        momentum > 0.

    early_stopping : bool, default=False
        Whether to use early stopping to terminate training when the
        validation score is not improving. If True, a stratified fraction
        ``validation_fraction`` of the training data is set aside, accuracy on
        it is computed after each epoch (``validation_scores_``,
        ``history_[i]['val_accuracy']``), training stops after
        ``n_iter_no_change`` epochs without an improvement of ``tol``, and the
        weights of the best epoch are restored. Only effective when
        solver='sgd' or 'adam'.

    validation_fraction : float, default=0.1
        The proportion of training data to set aside as validation set for
        early stopping. Only used if early_stopping is True.

    beta_1 : float, default=0.9
        Exponential decay rate for estimates of first moment vector in adam.
        Only used when solver='adam'.

    beta_2 : float, default=0.999
        Exponential decay rate for estimates of second moment vector in adam.
        Only used when solver='adam'.

    epsilon : float, default=1e-8
        Value for numerical stability in adam. Only used when solver='adam'.

    n_iter_no_change : int, default=10
        Maximum number of epochs to not meet ``tol`` improvement. Only
        effective when solver='sgd' or 'adam'. ``np.inf`` trains for exactly
        ``max_iter`` epochs, as Keras' ``fit(epochs=...)`` does, without a
        ConvergenceWarning at the end (a warm-started fit, which continues an
        earlier optimisation, still warns, as scikit-learn's does).

    max_fun : int, default=15000
        Maximum number of loss function calls. Only used when solver='lbfgs'.
"""

TORCH_PARAMETERS = """\
    dropout : float, default=0.0
        Dropout probability after each hidden activation during training (0
        disables dropout). Never applied at predict time.

    batch_norm : bool, default=False
        Batch normalization after each hidden layer, before the activation.
        Normalizing a batch of one sample is undefined, so when the number of
        training samples leaves a last batch of one (201 samples at the
        default batch size of 200), that sample joins the previous batch
        (of 200, making 201) instead.

    weight_init : str, default='auto'
        How weights are initialized:

        - 'auto': scikit-learn's MLP scheme (Glorot uniform on weights and
          biases), so that the same parameters train alike.
        - 'glorot_uniform', 'glorot_normal', 'he_uniform', 'he_normal': the
          Keras initializers of those names, with zero biases.
        - 'truncated_normal': Keras' ``TruncatedNormal(stddev=0.05)``, zero biases.
        - 'torch': PyTorch's own layer defaults.

    class_weight : dict, 'balanced' or None, default=None
        Weights associated with classes in the form ``{class_label: weight}``,
        multiplied into ``sample_weight``. 'balanced' uses
        ``n_samples / (n_classes * np.bincount(y))``.

    device : str, default='auto'
        Where to train and predict: 'auto' picks 'cuda' when
        ``torch.cuda.is_available()`` and 'cpu' otherwise; also 'cpu', 'cuda',
        'cuda:1', 'mps'. The device actually used is ``device_``. A model
        fitted on a GPU loads and predicts on a CPU-only machine.

    precision : {'float32', 'bfloat16', 'float16', 'auto'}, default='float32'
        The arithmetic of the forward pass and the loss during training.
        Weights and optimizer state stay float32 throughout; prediction runs
        in float32 and ``predict_proba`` returns float64.

        - 'float32': scikit-learn's arithmetic, the same results on every
          machine.
        - 'bfloat16': ``torch.autocast`` to bfloat16, on the CPU and on CUDA.
          Faster where the hardware computes bfloat16 natively (CPUs with
          AVX-512 BF16 or AMX, NVIDIA GPUs from Ampere on); slower where it is
          emulated.
        - 'float16': CUDA autocast to float16 with a gradient scaler; a
          ValueError on other devices and with ``solver='lbfgs'``.
        - 'auto': 'bfloat16' where it is native, 'float32' elsewhere.

    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks for the training loop (``Checkpoint``,
        ``EarlyStopping``, ``LRScheduler``, ``EpochScoring``, ...), run as
        skorch documents them; the history keys skorch's scorers write
        (``train_loss``, ``valid_loss``, ``valid_acc`` and their ``_best``
        flags) are in ``net_.history``. A callback named after one of
        skorch's defaults (``("print_log", PrintLog())``) replaces sknn's
        version of it. Copies are trained (one that cannot be copied, such as
        ``TensorBoard`` with its open writer, is used as it is); the fitted
        ones are in ``net_.callbacks_``.

    progress_bar : bool, default=False
        Show a progress bar (tqdm, on stderr) that advances once per epoch and
        shows the latest ``loss``, ``accuracy``, ``val_loss`` and
        ``val_accuracy``; when training ends early it says at which epoch and
        why. ``verbose`` lines print above it intact.
"""

FITTED_ATTRIBUTES = """\
    classes_ : ndarray of shape (n_classes,)
        Class labels for each output (column indices for 2-D targets).

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit. Defined only when `X` has feature
        names that are all strings.

    loss_ : float
        The current loss (log-loss plus the L2 term), as scikit-learn computes it.

    best_loss_ : float or None
        The minimum loss reached during fit; None with ``early_stopping=True``.

    loss_curve_ : list of float
        The training loss at the end of each epoch.

    validation_scores_ : list of float or None
        Accuracy on the validation set after each epoch; None unless
        ``early_stopping=True``.

    best_validation_score_ : float or None
        The best validation accuracy; None unless ``early_stopping=True``.

    t_ : int
        Number of training samples seen by the solver during fitting.

    n_iter_ : int
        Number of epochs (iterations for 'lbfgs') run by the last fit.

    n_outputs_ : int
        Number of network outputs (1 for binary targets).

    out_activation_ : str
        Name of the output activation: 'softmax' or 'logistic'.

    history_ : list of dict
        One record per epoch: 'epoch', 'loss', 'accuracy' (on training batches,
        in training mode), 'duration' in seconds, and with early stopping
        'val_loss' and 'val_accuracy'.

    net_ : skorch.NeuralNetClassifier
        The fitted skorch net (its module, optimizer, callbacks and history).

    device_ : str
        The device the model lives on.

    target_encoder_ : sknn._targets.TargetEncoder
        Encodes ``y`` for the loss and decodes predictions into y's format.
"""


FRAGMENTS = {
    "training_parameters": TRAINING_PARAMETERS,
    "torch_parameters": TORCH_PARAMETERS,
    "fitted_attributes": FITTED_ATTRIBUTES,
}


def fill_doc(cls):
    """Class decorator: put the shared fragments into ``cls.__doc__``."""
    doc = cls.__doc__
    for name, text in FRAGMENTS.items():
        doc = doc.replace("{" + name + "}", text)
    cls.__doc__ = doc
    return cls
