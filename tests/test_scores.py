"""Each score against scipy.stats / sklearn-style hand counts on small worked examples."""

import numpy as np
import pytest
from scipy import stats

from jaxbert.tasks import scores

# 8 binary predictions: tp=3 (0,1,2), fn=1 (3), fp=2 (4,5), tn=2 (6,7)
PRED = [1, 1, 1, 0, 1, 1, 0, 0]
GOLD = [1, 1, 1, 1, 0, 0, 0, 0]


def test_accuracy_by_hand():
  assert scores.accuracy(PRED, GOLD) == pytest.approx(5 / 8)


def test_f1_by_hand():
  # precision 3/5, recall 3/4 -> 2pr/(p+r) = 2*(9/20)/(27/20) = 2/3
  assert scores.f1(PRED, GOLD) == pytest.approx(2 / 3)
  assert scores.f1([0, 0], [1, 0]) == 0.0  # no true positive


def test_matthews_by_hand_and_against_phi():
  # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (6 - 2) / sqrt(5*4*4*3) = 4/sqrt(240)
  assert scores.matthews(PRED, GOLD) == pytest.approx(4 / np.sqrt(240))
  # For 0/1 variables Matthews is the Pearson correlation (phi coefficient).
  rng = np.random.default_rng(0)
  p, y = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
  assert scores.matthews(p, y) == pytest.approx(stats.pearsonr(p, y)[0], abs=1e-12)
  assert scores.matthews([1, 1, 1], [1, 0, 1]) == 0.0  # constant prediction: no skill, not NaN


def test_pearson_against_scipy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=100)
  y = 0.5 * x + rng.normal(size=100)
  assert scores.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
  assert scores.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
  assert scores.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_ranks_average_ties():
  np.testing.assert_array_equal(scores.ranks([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])
  np.testing.assert_array_equal(scores.ranks([3, 3]), [1.5, 1.5])


def test_spearman_with_ties_against_scipy():
  rng = np.random.default_rng(2)
  x = rng.integers(0, 6, 120).astype(float)  # many ties on both sides, as STS-B labels have
  y = x + rng.integers(-2, 3, 120)
  assert scores.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
  # By hand: ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; of [1, 3, 2, 4] are [1, 3, 2, 4].
  # Centred: [-1.5, 0, 0, 1.5] and [-1.5, .5, -.5, 1.5] -> 4.5 / sqrt(4.5 * 5)
  assert scores.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
