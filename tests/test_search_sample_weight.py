"""The fused search given sample weights: each stacked (candidate, fold) fit
takes its fold's weights as scikit-learn's search slices and routes them
(``sample_weight=``, a Pipeline's ``mlp__sample_weight``, metadata routing),
the scoring takes what scikit-learn's gives it, and the results equal
``sklearn.model_selection``'s."""

import numpy as np
import pytest
import sklearn
from searches import assert_same_search, both
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch, MLPRegressorTorch, model_selection


@pytest.fixture(scope="module")
def digits300():
    X, y = load_digits(return_X_y=True)
    weight = np.random.RandomState(0).uniform(0.1, 3.0, 300)
    return X[:300], y[:300], weight


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    weight = np.random.RandomState(1).uniform(0.1, 3.0, len(X))
    return X, y / 100.0, weight


def _classifier(**params):
    return MLPClassifierTorch(**{"hidden_layer_sizes": (12,), "max_iter": 4,
                                 "random_state": 0, "device": "cpu",
                                 "batch_size": 64, **params})


def _regressor(**params):
    return MLPRegressorTorch(**{"hidden_layer_sizes": (12,), "max_iter": 6,
                                "random_state": 0, "device": "cpu",
                                "batch_size": 64, **params})


@pytest.mark.parametrize("early_stopping", [False, True])
def test_classifier_search_with_sample_weight_stacks(digits300, counted, capsys,
                                                     early_stopping):
    # fit(X, y, sample_weight=w): each fit's loss and L2 term take the fold's
    # weights (with class_weight), and scikit-learn scores with the test
    # fold's weights, as the estimator's score takes sample_weight
    X, y, weight = digits300
    X = StandardScaler().fit_transform(X)
    est = _classifier(early_stopping=early_stopping, max_iter=6)
    grid = {"alpha": [1e-4, 1.0], "class_weight": [None, "balanced"]}
    ours, theirs = both("GridSearchCV", est, grid, X, y,
                         {"sample_weight": weight}, cv=3, verbose=1,
                         return_train_score=True)
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 12, "single": 0}
    assert "[sknn] 12 fits in 1 stacks, 0 fits one by one" in capsys.readouterr().out
    unweighted = model_selection.GridSearchCV(est, grid, cv=3).fit(X, y)
    assert not np.allclose(unweighted.cv_results_["mean_test_score"],
                           ours.cv_results_["mean_test_score"])


def test_pipeline_step_sample_weight_stacks(digits300, counted):
    # Pipeline.fit(mlp__sample_weight=w): the network's fit takes the weights,
    # the scaler none, and the scoring none (scikit-learn passes the scorer
    # only a parameter named sample_weight)
    X, y, weight = digits300
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", _classifier())])
    grid = {"mlp__hidden_layer_sizes": [(12,), (6, 6)],
            "mlp__learning_rate_init": [1e-3, 1e-2]}
    ours, theirs = both("GridSearchCV", pipe, grid, X, y,
                         {"mlp__sample_weight": weight}, cv=2,
                         scoring=["accuracy", "neg_log_loss"],
                         refit="neg_log_loss")
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 8, "single": 0}


def test_metadata_routing_sample_weight_stacks(digits300, counted):
    # with metadata routing, the weights go where the steps request them: the
    # scaler's fit, the network's fit and its score
    X, y, weight = digits300
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([
            ("scale", StandardScaler().set_fit_request(sample_weight=True)),
            ("mlp", _classifier().set_fit_request(sample_weight=True)
             .set_score_request(sample_weight=True))])
        grid = {"mlp__alpha": [1e-4, 1.0], "scale__with_mean": [True, False]}
        ours, theirs = both("RandomizedSearchCV", pipe, grid, X, y,
                             {"sample_weight": weight}, n_iter=3, cv=2,
                             random_state=0)
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 6, "single": 0}


@pytest.mark.parametrize("early_stopping", [False, True])
def test_regressor_search_with_sample_weight_stacks(diabetes, counted,
                                                    early_stopping):
    X, y, weight = diabetes
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", _regressor(early_stopping=early_stopping,
                                        learning_rate_init=0.01))])
    grid = {"mlp__alpha": [1e-4, 1.0], "mlp__hidden_layer_sizes": [(12,), (8, 4)]}
    groups = np.arange(len(X)) % 5
    ours, theirs = both("GridSearchCV", pipe, grid, X, y,
                         {"mlp__sample_weight": weight, "groups": groups},
                         cv=GroupKFold(3), return_train_score=True)
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 12, "single": 0}


def test_bare_regressor_search_scores_with_the_weights(diabetes, counted):
    # sample_weight=w: the fits and the R^2 scorer (which takes
    # sample_weight) are weighted, as in scikit-learn's search
    X, y, weight = diabetes
    X = StandardScaler().fit_transform(X)
    dist = {"alpha": [1e-5, 1e-3, 1e-1, 1.0], "learning_rate_init": [1e-3, 1e-2]}
    ours, theirs = both("RandomizedSearchCV", _regressor(solver="sgd"), dist, X, y,
                         {"sample_weight": weight}, n_iter=3, cv=3,
                         random_state=0, scoring=["r2", "neg_mean_squared_error"],
                         refit="r2")
    assert_same_search(ours, theirs, rtol=1e-4, ranks=False)
    assert counted == {"stacked": 9, "single": 0}
