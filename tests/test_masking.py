import numpy as np

from jaxbert import counters, masking

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


def test_a_batch_masks_as_its_rows_do():
  rng = np.random.default_rng(3)
  rows = np.stack([_row(rng) for _ in range(16)])
  rows[5, 40:] = 0  # a padded row: fewer ordinary tokens than picks elsewhere
  index = rng.integers(0, 10**9, 16)
  batch = masking.mask_rows(rows, 9, index, count=32, mask_id=MASK_ID, vocab_size=VOCAB,
                            special_ids=SPECIALS)
  for j in range(16):
    one = _mask(rows[j], seed=9, index=index[j])
    for k in one:
      np.testing.assert_array_equal(batch[k][j], one[k], err_msg=k)


def test_positions_are_uniform():
  # Every ordinary position equally likely: counts over 3,000 rows against a binomial spread.
  row = _row(np.random.default_rng(4))
  ordinary = np.flatnonzero(~np.isin(row, SPECIALS))
  n = 3000
  out = masking.mask_rows(np.tile(row, (n, 1)), 0, np.arange(n), count=32, mask_id=MASK_ID,
                          vocab_size=VOCAB, special_ids=SPECIALS)
  counts = np.bincount(out["positions"].ravel(), minlength=128)
  p = 32 / len(ordinary)
  expected, sd = n * p, np.sqrt(n * p * (1 - p))
  assert counts[np.isin(np.arange(128), ordinary, invert=True)].sum() == 0
  assert np.abs(counts[ordinary] - expected).max() < 4.5 * sd
  # Random replacements cover the ordinary vocabulary evenly too.
  new = out["inputs"][np.arange(n)[:, None], out["positions"]]
  drawn = new[(new != MASK_ID) & (new != out["targets"])]
  hist = np.bincount(drawn, minlength=VOCAB)[5:]
  chi2, df = ((hist - hist.mean()) ** 2 / hist.mean()).sum(), len(hist) - 1
  assert abs(chi2 - df) < 6 * np.sqrt(2 * df)  # a chi-square's mean and spread


def test_permutations_are_bijections_and_differ_by_key():
  for n in (1, 2, 3, 7, 64, 65, 1000, 4097):
    orders = [counters.permute(counters.key(5, epoch), np.arange(n), n) for epoch in range(3)]
    for o in orders:
      assert sorted(o.tolist()) == list(range(n))
    if n >= 64:
      assert (orders[0] != orders[1]).mean() > 0.9 and (orders[1] != orders[2]).mean() > 0.9
      # no trace of the identity: position and place are uncorrelated
      assert abs(np.corrcoef(orders[0], np.arange(n))[0, 1]) < 0.2
