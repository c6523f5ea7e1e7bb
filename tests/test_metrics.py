"""SegMetrics against hand-computed confusion matrices."""
import math

import pytest
import torch

from sszoo.metrics import SegMetrics


def test_hand_computed_with_absent_class_and_ignore():
    # 3 classes; class 2 is never labelled but predicted once; one pixel ignored
    label = torch.tensor([[0, 0, 1, 1], [1, 255, 0, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    m = SegMetrics(3)
    m.update(pred, label)
    # counted pixels (label, pred): (0,0) (0,1) (1,1) (1,1) (1,2) (0,0) (1,0)
    expected = torch.tensor([[2, 1, 0], [1, 2, 1], [0, 0, 0]])
    assert torch.equal(m.matrix[:3], expected)
    r = m.compute()
    # IoU: class0 2/(3+3-2)=0.5, class1 2/(3+4-2)=0.4, class2 0/(1+0-0)=0
    assert r["IoU"] == pytest.approx([50.0, 40.0, 0.0])
    assert r["mIoU"] == pytest.approx(30.0)
    # Acc: class0 2/3, class1 2/4, class2 undefined (never labelled) -> excluded from mAcc
    assert r["Acc"][:2] == pytest.approx([200 / 3, 50.0]) and math.isnan(r["Acc"][2])
    assert r["mAcc"] == pytest.approx((200 / 3 + 50) / 2)
    assert r["aAcc"] == pytest.approx(400 / 7)


def test_class_neither_labelled_nor_predicted_is_excluded_from_miou():
    m = SegMetrics(4)
    m.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    r = m.compute()
    assert math.isnan(r["IoU"][2]) and math.isnan(r["IoU"][3])
    assert r["mIoU"] == pytest.approx((50 + 50) / 2)


def test_out_of_range_labels_follow_the_reference():
    # label 7 in a 3-class set: no class's label area, but its prediction counts in the union
    m = SegMetrics(3)
    m.update(torch.tensor([1, 1, 0]), torch.tensor([7, 1, 0]))
    r = m.compute()
    assert m.out_of_range == 1 and r["out_of_range"] == 1
    assert r["IoU"][1] == pytest.approx(50.0)   # intersect 1, pred 2, label 1 -> union 2
    assert r["aAcc"] == pytest.approx(100.0)    # 2 correct of 2 in-range labelled pixels


def test_accumulates_over_updates_and_reset():
    m = SegMetrics(2)
    m.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    m.update(torch.tensor([[1]]), torch.tensor([[1]]))
    assert m.matrix[:2].tolist() == [[1, 1], [0, 1]]
    m.reset()
    assert int(m.matrix.sum()) == 0


def test_bad_input_is_explained():
    m = SegMetrics(3)
    with pytest.raises(ValueError, match="differs from label shape"):
        m.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="argmax"):
        m.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="0..2"):
        m.update(torch.full((2,), 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        SegMetrics(0)
