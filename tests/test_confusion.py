"""Per-class evaluation against hand-counted predictions."""
import numpy as np
import pytest

from rifle_paddle.engine.confusion import confusion_matrix, per_class_accuracy, top_k_accuracy


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    preds = [0, 1, 0, 1, 1, 0, 2, 2, 1]
    # by hand: class 0 -> 0,1,0; class 1 -> 1,1; class 2 -> 0,2,2,1
    assert confusion_matrix(labels, preds, 4).tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 2, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(confusion_matrix(labels, preds, 4))
    assert acc[:3] == pytest.approx([2 / 3, 1.0, 0.5]) and np.isnan(acc[3])  # class 3 has no test image


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        confusion_matrix([0, 1], [0], 3)


def test_top_k_accuracy():
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.06, 0.04], [0.2, 0.3, 0.5]])
    labels = [2, 1, 2]  # rank of the true class: 2nd, 2nd, 1st
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, 2) == pytest.approx(1.0)
