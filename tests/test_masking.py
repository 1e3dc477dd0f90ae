import numpy as np

from jaxbert import masking

SPECIALS = (0, 1, 2, 3, 4)
MASK_ID, VOCAB = 4, 1000


def _mask(row, seed=0, index=0, count=32):
  return masking.mask_row(row, seed, index, count=count, mask_id=MASK_ID, vocab_size=VOCAB,
                          special_ids=SPECIALS)


def _row(rng, length=128, seps=6):
  row = rng.integers(5, VOCAB, size=length)
  row[rng.choice(length, seps, replace=False)] = 3  # [SEP]s between documents
  return row


def test_count_is_round_rate_times_length():
  assert masking.num_masked(0.25, 128) == 32
  assert masking.num_masked(0.15, 128) == 19
  assert masking.num_masked(0.15, 10) == 2
  assert masking.num_masked(0.001, 10) == 1


def test_exact_count_sorted_unique_never_special():
  rng = np.random.default_rng(0)
  for index in range(200):
    row = _row(rng)
    out = _mask(row, index=index)
    pos = out["positions"]
    assert pos.shape == (32,) and len(set(pos.tolist())) == 32
    assert np.all(np.diff(pos) > 0)
    assert not np.isin(row[pos], SPECIALS).any()
    assert np.all(out["weights"] == 1)
    np.testing.assert_array_equal(out["targets"], row[pos])
    untouched = np.setdiff1d(np.arange(128), pos)
    np.testing.assert_array_equal(out["inputs"][untouched], row[untouched])


def test_80_10_10_proportions():
  rng = np.random.default_rng(1)
  kinds = np.zeros(3)
  for index in range(2000):
    row = _row(rng)
    out = _mask(row, index=index)
    new = out["inputs"][out["positions"]]
    is_mask = new == MASK_ID
    kept = new == out["targets"]
    kinds += [is_mask.sum(), (~is_mask & ~kept).sum(), (kept & ~is_mask).sum()]
    assert np.all(new[~is_mask] >= 5)  # random replacements are ordinary tokens
  frac = kinds / kinds.sum()
  # 64k draws: the standard error of each fraction is < 0.002.
  np.testing.assert_allclose(frac, [0.8, 0.1, 0.1], atol=0.01)


def test_same_seed_and_index_same_mask_others_differ():
  row = _row(np.random.default_rng(2))
  a, b = _mask(row, seed=5, index=7), _mask(row, seed=5, index=7)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["positions"], _mask(row, seed=5, index=8)["positions"])
  assert not np.array_equal(a["positions"], _mask(row, seed=6, index=7)["positions"])


def test_short_of_ordinary_tokens_pads_with_zero_weight():
  row = np.array([3] * 10 + [7, 8, 9] + [0] * 3)
  out = _mask(row, count=5)
  assert out["weights"].sum() == 3
  chosen = out["positions"][out["weights"] > 0]
  assert sorted(chosen.tolist()) == [10, 11, 12]
  # zero-weight picks leave their (special) tokens untouched
  np.testing.assert_array_equal(np.delete(out["inputs"], [10, 11, 12]),
                                np.delete(row, [10, 11, 12]))
