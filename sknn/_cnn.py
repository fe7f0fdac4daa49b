"""CNNClassifier: a convolutional image classifier with scikit-learn's interface."""

import math
from numbers import Integral

import numpy as np
from scipy import sparse

from sknn import _options
from sknn._base import BaseTorchClassifier
from sknn._compat import Interval, StrOptions
from sknn._docstrings import fill_doc


@fill_doc
class CNNClassifier(BaseTorchClassifier):
    """Convolutional neural-network image classifier trained with PyTorch.

    A scikit-learn classifier for images: it takes the arrays Keras and OpenCV
    tutorials hold, ``(n_samples, height, width, channels)`` channels-last,
    ``(n_samples, height, width)`` grayscale, or flat rows such as a scaler in
    a Pipeline hands on, and builds the network from plain parameters at fit
    time. Training is the same as :class:`MLPClassifierTorch`'s (solvers,
    early stopping, class weights, callbacks, ``net_``, ``history_``), plus
    optional on-the-fly augmentation of the training batches.

    Parameters
    ----------
    conv_filters : tuple of int or tuple of tuple of int, default=(32, 64, 64)
        The number of filters of each convolution, grouped in blocks. An int is
        a block of one convolution; a tuple is a block of several convolutions
        (VGG style: ``((32, 32), (64, 64), (128, 128))``). Max pooling follows
        every block but the last (every block with ``pool_last=True``).

    kernel_size : int or (int, int), default=3
        Height and width of the convolution kernels.

    pool_size : int or (int, int), default=2
        Height and width of the max-pooling windows (also their stride).

    dense_layer_sizes : tuple of int, default=(64,)
        Width of each hidden dense layer between the flattened feature map and
        the output layer.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation after each convolution and hidden dense layer.

    input_shape : tuple of int or None, default=None
        ``(height, width, channels)`` (or ``(height, width)`` for one channel)
        of an image. Needed only for flat 2-D X that is not a perfect square
        (colour images, non-square images). When None, the shape comes from X:

        - 4-D ``(n_samples, height, width, channels)``: the last three axes.
        - 3-D ``(n_samples, height, width)``: one-channel images.
        - 2-D ``(n_samples, n_features)`` whose width is a perfect square
          ``s * s``: one-channel ``s x s`` images.
        - any other 2-D X: each row is a one-row signal of shape
          ``(1, n_features, 1)``; convolutions and pooling run along the row.

    padding : {'auto', 'same', 'valid'}, default='auto'
        How the convolutions and pooling treat the image borders:

        - 'valid': neither padding nor rounding up, as Keras' default
          ``padding='valid'``: each 3x3 convolution takes 2 off the height and
          the width, each 2x2 pooling halves them, rounding down. Images too
          small for the stack are a ValueError that names the smallest valid
          input size.
        - 'same': zero-pads the convolutions and rounds pooled sizes up, as
          Keras' ``padding='same'``: images of any size, down to 1x1, stay
          valid through any stack, at the cost of larger feature maps (on
          28x28 MNIST the default stack does about twice the multiply-adds of
          'valid').
        - 'auto': 'valid' when the whole stack fits the images without
          padding with room to spare, that is when 'valid' leaves a feature
          map of at least 2x2 after the last block (every convolution and
          pooling window then fits inside its input along both axes, and the
          last convolution still slides); 'same' otherwise. It is decided at
          each fit that builds the network, from ``input_shape_``, and
          ``padding_`` holds the result. With the default stack, 28x28 MNIST
          gets 'valid', the Keras tutorials' network (93,322 parameters for 10
          classes); images smaller than 22x22, such as scikit-learn's 8x8
          digits, and one-row signals get 'same'. A 1x1 last feature map is
          left to 'same' because 'valid' then lost accuracy (0.94 against
          0.97 on the 8x8 digits with ``conv_filters=(16, 32)``).

    pool_last : bool, default=False
        Also pool after the last convolution block (VGG style).

    augment : dict or None, default=None
        Random transforms of the training batches, drawn anew for every batch
        of every epoch and never applied at predict time or to the
        early-stopping validation set. The keys and their meaning are those of
        Keras' ``ImageDataGenerator``:

        - 'rotation_range' : degrees, angle drawn from [-r, r].
        - 'width_shift_range', 'height_shift_range' : below 1 a fraction of the
          width (height), from 1 on pixels; shift drawn from [-r, r].
        - 'shear_range' : shear angle in degrees, drawn from [-r, r].
        - 'zoom_range' : float z for [1 - z, 1 + z], or [lower, upper].
        - 'horizontal_flip', 'vertical_flip' : flip half of the images.
        - 'fill_mode' : 'nearest' (default), 'constant' or 'reflect'; 'cval' :
          the fill value of 'constant'.

        The whole batch is resampled by one affine grid (bilinear), on the
        training device, and the draws are seeded by ``random_state``. An
        unknown key is a ValueError listing the accepted ones.

{training_parameters}
{torch_parameters}
    Attributes
    ----------
{fitted_attributes}
    input_shape_ : tuple of int
        ``(height, width, channels)`` of the images the network was built for.

    padding_ : {'same', 'valid'}
        The padding the network uses: ``padding`` itself, or what 'auto'
        resolved to for ``input_shape_``.

    n_layers_ : int
        Number of layers with weights (convolutions and dense layers), plus
        one for the input.

    See Also
    --------
    MLPClassifierTorch : The same training contract for flat feature vectors.
    sklearn.neural_network.MLPClassifier : The perceptron of scikit-learn.

    Notes
    -----
    The network is, for each block: its convolutions (each followed by batch
    normalization when ``batch_norm``, then the activation), max pooling,
    dropout when ``dropout > 0``; then the flattened feature map goes through
    the hidden dense layers (each with optional batch normalization, the
    activation and dropout) to the output layer. The default is the Keras CNN
    tutorial's net: Conv32-Pool-Conv64-Pool-Conv64-Dense64-output, with
    'valid' 3x3 convolutions on images of at least 22x22 (``padding='auto'``);
    on 28x28x1 MNIST with 10 classes it has the Keras model's 93,322
    parameters.

    ``uint8`` input is read as pixel intensities in [0, 255] and divided by
    255, as torchvision's ``ToTensor`` does, at fit and at predict time; input
    of any other dtype is used as it is, so scale float images yourself (a
    ``MinMaxScaler`` in a Pipeline, or ``X / 255``).

    ``n_features_in_`` is the flat width ``height * width * channels``, as
    scikit-learn's estimator checks expect. At predict time, images must have
    the ``input_shape_`` seen in fit.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sknn import CNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X.reshape(-1, 8, 8) / 16, y, random_state=0)
    >>> clf = CNNClassifier(conv_filters=(16, 32), batch_size=32, max_iter=10,
    ...                     random_state=0, device="cpu").fit(X_train, y_train)
    >>> clf.input_shape_
    (8, 8, 1)
    >>> clf.score(X_test, y_test) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **BaseTorchClassifier._parameter_constraints,
        "conv_filters": ["array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "pool_size": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "dense_layer_sizes": ["array-like"],
        "input_shape": ["array-like", None],
        "padding": [StrOptions(set(_options.PADDINGS))],
        "pool_last": ["boolean"],
        "augment": [dict, None],
    }

    def __init__(
        self,
        conv_filters=(32, 64, 64),
        kernel_size=3,
        pool_size=2,
        dense_layer_sizes=(64,),
        activation="relu",
        *,
        input_shape=None,
        padding="auto",
        pool_last=False,
        augment=None,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        batch_norm=False,
        weight_init="auto",
        class_weight=None,
        device="auto",
        precision="float32",
        callbacks=None,
        progress_bar=False,
    ):
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.dense_layer_sizes = dense_layer_sizes
        self.activation = activation
        self.input_shape = input_shape
        self.padding = padding
        self.pool_last = pool_last
        self.augment = augment
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.weight_init = weight_init
        self.class_weight = class_weight
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.progress_bar = progress_bar

    # ------------------------------------------------------------ input layout
    def _declared_shape(self):
        """``input_shape`` as (height, width, channels), or None."""
        if self.input_shape is None:
            return None
        shape = tuple(self.input_shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or not all(
                isinstance(v, Integral) and not isinstance(v, bool) and v >= 1
                for v in shape):
            raise ValueError(
                "input_shape must be (height, width, channels) or (height, width) "
                f"with positive ints, got input_shape={self.input_shape!r}."
            )
        return tuple(int(v) for v in shape)

    def _flatten_X(self, X, reset):
        """Images -> flat rows; record (reset) or check the image shape.

        4-D and 3-D arrays are flattened to (n_samples, height * width *
        channels); ``uint8`` arrays are divided by 255. At fit the image shape
        becomes ``input_shape_``; at predict a different image shape is a
        ValueError that names ``input_shape``.
        """
        image_shape = None
        if sparse.issparse(X) or hasattr(X, "iloc"):
            # sparse matrices and DataFrames keep their type (feature names)
            dtypes = np.ravel([X.dtype] if sparse.issparse(X) else X.dtypes)
            if len(dtypes) and all(d == np.uint8 for d in dtypes):
                X = X.astype(np.float32) / np.float32(255.0)
        else:
            if not hasattr(X, "ndim"):
                try:
                    X = np.asarray(X)
                except ValueError:
                    return X  # ragged: let validate_data report it
            if X.ndim in (3, 4):
                X = np.asarray(X)
                image_shape = X.shape[1:] if X.ndim == 4 else (*X.shape[1:], 1)
                X = X.reshape(len(X), math.prod(X.shape[1:]))
            if X.dtype == np.uint8:
                X = X.astype(np.float32) / np.float32(255.0)
        if reset:
            self.input_shape_ = self._resolve_shape(X, image_shape)
        elif image_shape is not None and tuple(image_shape) != self.input_shape_:
            raise ValueError(
                f"X holds images of shape {tuple(image_shape)}, but "
                f"{type(self).__name__} was fitted on images of shape "
                f"input_shape_={self.input_shape_} (input_shape={self.input_shape}). "
                "Resize the images to the fitted size."
            )
        return X

    def _resolve_shape(self, X, image_shape):
        """The (height, width, channels) of the images in fit's X."""
        declared = self._declared_shape()
        if image_shape is not None:
            image_shape = tuple(int(v) for v in image_shape)
            if declared is not None and declared != image_shape:
                raise ValueError(
                    f"X holds images of shape {image_shape} but "
                    f"input_shape={self.input_shape!r}. Set input_shape to the "
                    "shape of the images, or to None to take it from X."
                )
            return image_shape
        try:
            n_features = int(np.shape(X)[1]) if len(np.shape(X)) == 2 else None
        except (TypeError, ValueError):
            n_features = None
        if n_features is None or n_features < 1:
            return declared  # not 2-D rows: validate_data reports the problem
        if declared is not None:
            if math.prod(declared) != n_features:
                raise ValueError(
                    f"input_shape={self.input_shape!r} holds "
                    f"{math.prod(declared)} values per image, but X has "
                    f"{n_features} features per row. Pass images of that shape, "
                    "or set input_shape to (height, width, channels) with "
                    "height * width * channels equal to the number of features."
                )
            return declared
        side = math.isqrt(n_features)
        if side * side == n_features:
            return (side, side, 1)
        return (1, n_features, 1)

    def _input_tensor(self, X, device):
        from sknn._data import as_float32_tensor

        height, width, channels = self.input_shape_
        X = as_float32_tensor(X, device)
        # NHWC rows viewed as an NCHW tensor are in torch's channels_last memory
        # format, without a copy; CPU convolutions (oneDNN) run faster on it
        # than on NCHW-contiguous input (docs/benchmarks_cnn.md), and batches
        # sliced from it keep it. Elsewhere the usual NCHW copy is made once.
        images = X.reshape(len(X), height, width, channels).permute(0, 3, 1, 2)
        if images.device.type == "cpu":
            return images
        return images.contiguous()

    # ----------------------------------------------------------------- network
    def _sizes(self, name):
        sizes = getattr(self, name)
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0
                   for s in sizes):
            raise ValueError(f"{name} must hold ints > 0, got {tuple(sizes)}.")
        return tuple(int(s) for s in sizes)

    def _window(self, name):
        from sknn._modules import pair

        value = getattr(self, name)
        try:
            window = pair(value)
        except (TypeError, ValueError):
            window = None
        if window is None or min(window) < 1:
            raise ValueError(
                f"{name} must be an int >= 1 or a pair (height, width) of them, "
                f"got {name}={value!r}.")
        return window

    def _build_module(self, n_features, n_outputs):
        import torch

        from sknn._modules import ConvModule, conv_blocks, init_weights

        module = ConvModule(
            self.input_shape_, conv_blocks(self.conv_filters),
            self._sizes("dense_layer_sizes"), n_outputs,
            kernel_size=self._window("kernel_size"),
            pool_size=self._window("pool_size"), padding=self.padding,
            pool_last=self.pool_last, activation=self.activation,
            dropout=self.dropout, batch_norm=self.batch_norm)
        # set wherever the module is built (fit, and loaders' _rebuild), so it
        # always describes net_
        self.padding_ = module.padding
        module = init_weights(module, self.weight_init, self.activation)
        if torch.device(self.device_).type == "cpu":
            # kernels in the layout of the channels_last input (see
            # _input_tensor): oneDNN then need not reorder them at every call
            module = module.to(memory_format=torch.channels_last)
        return module

    def _batch_work(self, batch_size, module):
        # convolutions reuse their weights at every position: count the
        # multiply-accumulates, not the parameters
        return batch_size * module.macs_per_image

    def _batch_transform(self):
        if self.augment is None:
            return None
        from sknn._augment import ImageAugmenter

        augmenter = ImageAugmenter.from_dict(self.augment)
        return None if augmenter.is_identity() else augmenter

    def _set_layer_attributes(self):
        self.n_layers_ = len(self.net_.module_.weight_layers()) + 1


__all__ = ["CNNClassifier"]
