"""TargetEncoder on its own: no torch involved."""

import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import LabelBinarizer

from sknn._targets import TargetEncoder


@pytest.mark.parametrize(
    "y, classes",
    [
        ([3, 7, 7, 3, 7], [3, 7]),
        (["cat", "dog", "bird", "dog"], ["bird", "cat", "dog"]),
        ([True, False, True], [False, True]),
        ([2.0, 1.0, 5.0, 1.0], [1.0, 2.0, 5.0]),
    ],
)
def test_labels_of_any_type_round_trip(y, classes):
    encoder = TargetEncoder().fit(y)
    assert encoder.classes_.tolist() == classes
    encoded = encoder.transform(y)
    onehot = np.eye(len(classes))[encoder.class_indices(encoded)]
    assert encoder.inverse_transform(onehot).tolist() == list(y)


def test_binary_uses_one_sigmoid_output():
    encoder = TargetEncoder().fit(["no", "yes", "no"])
    assert encoder.kind_ == "binary"
    assert encoder.n_outputs_ == 1
    assert encoder.out_activation_ == "logistic"
    assert encoder.loss_family == "bce"
    encoded = encoder.transform(["yes", "no"])
    assert encoded.dtype == np.float32 and encoded.shape == (2, 1)
    proba = np.array([[0.2, 0.8], [0.9, 0.1]])  # predict_proba's two columns
    assert encoder.inverse_transform(proba).tolist() == ["yes", "no"]


def test_multiclass_encodes_int64_indices():
    encoder = TargetEncoder().fit([5, 1, 9, 1])
    assert encoder.kind_ == "multiclass"
    assert encoder.out_activation_ == "softmax"
    encoded = encoder.transform([9, 5, 1])
    assert encoded.dtype == np.int64
    assert encoded.tolist() == [2, 1, 0]


def test_label_binarizer_onehot_answers_in_onehot():
    labels = np.array(["a", "b", "c", "b"])
    lb = LabelBinarizer()
    Y = lb.fit_transform(labels)
    encoder = TargetEncoder().fit(Y)
    assert encoder.kind_ == "onehot"
    assert encoder.loss_family == "ce"
    assert encoder.transform(Y).tolist() == [0, 1, 2, 1]
    decoded = encoder.inverse_transform(np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]))
    assert decoded.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert lb.inverse_transform(decoded).tolist() == ["b", "a"]


def test_two_class_label_binarizer_column_is_a_column_vector():
    Y = LabelBinarizer().fit_transform(["x", "y", "x"])
    assert Y.shape == (3, 1)
    with pytest.warns(DataConversionWarning):
        encoder = TargetEncoder().fit(Y)
    assert encoder.kind_ == "binary"
    assert encoder.classes_.tolist() == [0, 1]


def test_multilabel_uses_independent_sigmoids():
    Y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    encoder = TargetEncoder().fit(Y)
    assert encoder.kind_ == "multilabel"
    assert encoder.n_outputs_ == 3
    assert encoder.transform(Y).dtype == np.float32
    decoded = encoder.inverse_transform(np.array([[0.9, 0.2, 0.6], [0.1, 0.1, 0.1]]))
    assert decoded.tolist() == [[1, 0, 1], [0, 0, 0]]


def test_classes_parameter_covers_unseen_labels():
    encoder = TargetEncoder(classes=[0, 1, 2]).fit([0, 0, 1])
    assert encoder.classes_.tolist() == [0, 1, 2]
    assert encoder.kind_ == "multiclass"


def test_single_class_is_binary_and_always_predicted():
    # scikit-learn's MLPClassifier fits a single class and predicts it
    encoder = TargetEncoder().fit([4, 4, 4])
    assert encoder.kind_ == "binary" and encoder.n_outputs_ == 1
    assert encoder.transform([4, 4]).tolist() == [[0.0], [0.0]]
    assert encoder.inverse_transform([[0.1, 0.9], [0.7, 0.3]]).tolist() == [4, 4]


def test_continuous_target_is_an_error():
    with pytest.raises(ValueError, match="Unknown label type"):
        TargetEncoder().fit([0.5, 1.7, 2.2])


def test_unseen_label_at_transform_is_an_error():
    encoder = TargetEncoder().fit(["a", "b"])
    with pytest.raises(ValueError, match=r"not seen in fit: \['z'\]"):
        encoder.transform(["a", "z"])


def test_non_indicator_matrix_is_an_error():
    with pytest.raises(ValueError, match="0/1 indicator matrix"):
        TargetEncoder().fit(np.array([[0, 2], [1, 3]]))


def test_target_encoder_is_public_in_sknn_preprocessing():
    import sknn.preprocessing

    assert sknn.preprocessing.TargetEncoder is TargetEncoder
    assert "TargetEncoder" in sknn.preprocessing.__all__
