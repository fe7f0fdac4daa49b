"""What a fitted model is made of: its final estimator and the input it takes.

One home for the questions every consumer of a fitted model asks of a
classifier, a :class:`~sklearn.pipeline.Pipeline` (nested ones included) or
a fitted search: which estimator is at the end (:func:`final_estimator`),
which step comes first (:func:`first_step`), which steps do something
(:func:`without_passthrough`), and what rows it takes
(:func:`input_spec`). scikit-learn is imported inside the functions, so that
importing this module stays cheap.
"""


def is_passthrough(step):
    """Whether a Pipeline step is the identity: None or ``'passthrough'``."""
    return step is None or (isinstance(step, str) and step == "passthrough")


def _is_pipeline(model):
    from sklearn.pipeline import Pipeline

    return isinstance(model, Pipeline)


def unwrap_search(model):
    """A fitted search's ``best_estimator_``; any other model as it is.

    Raises
    ------
    ValueError
        If ``model`` is a fitted search without a ``best_estimator_``
        (``refit=False``).
    """
    if _is_pipeline(model) or not hasattr(model, "cv_results_"):
        return model
    if not hasattr(model, "best_estimator_"):
        raise ValueError(
            f"{type(model).__name__} was fitted with refit=False, so it has no "
            "best_estimator_. Fit it with refit=True, or use a model fitted on "
            "the best parameters.")
    return model.best_estimator_


def final_estimator(model):
    """The estimator at the end of ``model``.

    A Pipeline's last step (recursively, through nested Pipelines) and a
    fitted search's ``best_estimator_`` are unwrapped; anything else is
    returned as it is. A Pipeline whose last step is ``'passthrough'`` or
    None ends in that value.
    """
    while True:
        if _is_pipeline(model):
            if not model.steps:
                return model
            model = model.steps[-1][1]
        elif hasattr(model, "best_estimator_"):
            model = model.best_estimator_
        else:
            return model


def first_step(model):
    """The first step of ``model`` that does something: a Pipeline's first
    step that is not ``'passthrough'`` or None (recursively), else ``model``."""
    while _is_pipeline(model):
        steps = [step for _, step in model.steps if not is_passthrough(step)]
        if not steps:
            return model
        model = steps[0]
    return model


def without_passthrough(model):
    """``model`` with the ``'passthrough'`` and None steps of its Pipelines
    left out (nested Pipelines too); a Pipeline left with one step is that
    step. The fitted steps are shared, not copied; a model without such steps
    is returned as it is."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return model
    steps = [(name, without_passthrough(step)) for name, step in model.steps
             if not is_passthrough(step)]
    if not steps:
        return model
    if len(steps) == 1:
        return steps[0][1]
    if len(steps) == len(model.steps) and all(
            new is old for (_, new), (_, old) in zip(steps, model.steps)):
        return model
    return Pipeline(steps)


def input_spec(model):
    """How to read new input for a fitted model, from its fitted steps.

    Parameters
    ----------
    model : estimator or Pipeline
        A fitted classifier, or a Pipeline ending in one.

    Returns
    -------
    spec : dict
        For a model whose first step is a fitted
        :class:`~sknn.preprocessing.PixelScaler`: ``{'kind': 'image',
        'image_shape': (height, width, channels) or None, 'max_value': m,
        'n_features': n}``. Otherwise ``{'kind': 'table', 'feature_names':
        [...] or None, 'text': [...], 'categories': {column: set of known
        values}, 'n_features': n or None}``, where ``text`` lists the columns
        a first-step ColumnTransformer one-hot encodes.
    """
    from sklearn.preprocessing import OneHotEncoder

    from sknn.preprocessing import PixelScaler

    first = first_step(model)
    if isinstance(first, PixelScaler):
        shape = first.image_shape_
        return {"kind": "image",
                "image_shape": None if shape is None else tuple(shape),
                "max_value": float(first.max_value),
                "n_features": int(first.n_features_in_)}
    text, categories = [], {}
    for _, step, columns in getattr(first, "transformers_", []):
        if isinstance(step, OneHotEncoder):
            text.extend(columns)
            categories.update({str(c): set(map(str, cats))
                               for c, cats in zip(columns, step.categories_)})
    names = getattr(first, "feature_names_in_", None)
    n_features = getattr(first, "n_features_in_", None)
    return {"kind": "table",
            "feature_names": None if names is None else [str(c) for c in names],
            "text": [str(c) for c in text], "categories": categories,
            "n_features": None if n_features is None else int(n_features)}
