"""Engine-neutral accuracy: RMSE and PCK per body part, with individuals matched."""

import numpy as np
import pytest

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.processing.accuracy import score_predictions


def _set(n_ind=1):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (10, n_ind, 2, 2))
    return LabelSet([f"v/img{i}.png" for i in range(10)], ["nose", "tail"],
                    [f"a{i}" for i in range(n_ind)], xy)


def test_rmse_and_pck_by_split_and_body_part():
    truth = _set()
    pred = truth.xy.copy()
    pred[..., 0, 0] += 3.0          # nose off by 3 px everywhere
    pred[0, 0, 1] = np.nan          # one tail not predicted
    test = [i < 4 for i in range(10)]
    scores = {(s.split, s.body_part): s for s in score_predictions(truth, pred, test)}
    nose = scores[("test", "nose")]
    assert nose.rmse == pytest.approx(3.0) and nose.pck[2.0] == 0 and nose.pck[5.0] == 1
    tail = scores[("test", "tail")]
    assert tail.rmse == pytest.approx(0.0) and tail.n_predicted == 3 and tail.pck[2.0] == 0.75
    assert scores[("train", "")].n_labelled == 12 and scores[("test", "")].n_frames == 4


def test_swapped_individuals_are_matched():
    truth = _set(2)
    pred = truth.xy[:, ::-1].copy()
    scores = score_predictions(truth, pred, [True] * 10)
    assert all(s.rmse == pytest.approx(0.0) for s in scores)


def test_wrong_shape_is_named():
    with pytest.raises(LabelSetError, match="do not fit 10 frames"):
        score_predictions(_set(), np.zeros((9, 1, 2, 2)))
