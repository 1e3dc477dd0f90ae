"""The loader over a sharded store: shards, curriculum order, per-process sharding, resume."""
import itertools

import numpy as np
import pytest

from jaxbert.data import default_config, loader, prepare, shards

VOCAB = 500


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, request):
  # Small shards, so the store spans several files and rows cross shard boundaries.
  patch = pytest.MonkeyPatch()
  patch.setattr(shards, "SHARD_ROWS", 100)
  request.addfinalizer(patch.undo)
  cfg = default_config()
  cfg.cache_dir = str(tmp_path_factory.mktemp("cache"))
  cfg.max_documents, cfg.seq_len, cfg.max_token_char_ratio = 30, 32, 0.0
  return prepare(cfg, VOCAB)


def batches(rows, n, **kw):
  kw = dict(seed=3, batch_size=8, mask_rate=0.25, vocab_size=VOCAB, threads=2,
            process_index=0, process_count=1) | kw
  return list(itertools.islice(iter(loader.pretraining_batches(rows, **kw)), n))


def test_rows_span_shards(sharded):
  rows = sharded.train
  shards = sharded.manifest["shards"]["train"]
  assert len(shards) > 3 and all(s["rows"] == 100 for s in shards[:-1])
  flat = np.concatenate([np.load(f"{sharded.path}/{s['file']}") for s in shards])
  assert rows.shape == flat.shape and len(rows) == sharded.manifest["counts"]["train"]["rows"]
  np.testing.assert_array_equal(np.asarray(rows), flat)
  for i in (0, 99, 100, 101, len(flat) - 1, -1):
    np.testing.assert_array_equal(rows[i], flat[i])
  np.testing.assert_array_equal(rows[95:205], flat[95:205])
  np.testing.assert_array_equal(rows[1:300:7], flat[1:300:7])
  # The loader reads the same rows from the shards as from one array.
  for a, b in zip(batches(rows, 5), batches(flat, 5)):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def originals(bs):
  """Rows as they were before masking: the targets put back."""
  out = []
  for b in bs:
    x = b["inputs"].copy()
    np.put_along_axis(x, b["positions"], b["targets"], 1)
    out += [tuple(r) for r in x]
  return out


@pytest.mark.slow
def test_shuffle_is_a_permutation_per_epoch_and_repeatable(sharded):
  rows = sharded.train
  n = len(rows)
  first = batches(rows, 2 * n, batch_size=1)
  again = batches(rows, 2 * n, batch_size=1)
  assert all((a["inputs"] == b["inputs"]).all() for a, b in zip(first, again))
  epoch1, epoch2 = originals(first[:n]), originals(first[n:])
  assert sorted(epoch1) == sorted(map(tuple, np.asarray(rows)))  # every row once per epoch
  assert epoch1 != epoch2 and sorted(epoch1) == sorted(epoch2)  # a new order, the same rows
  targets = lambda bs: [tuple(b["targets"][0]) for b in bs]
  assert targets(first[:n]) != targets(first[n:])  # masks differ between epochs


def test_batches_straddling_epochs_keep_each_epoch_a_permutation(sharded):
  rows = sharded.train
  n = len(rows)
  assert n % 7
  stream = originals(batches(rows, 2 * n // 7 + 1, batch_size=7))
  assert sorted(stream[:n]) == sorted(stream[n:2 * n]) == sorted(map(tuple, np.asarray(rows)))
  assert stream[:n] != stream[n:2 * n]


def test_curriculum_order_by_dots_descending(sharded):
  rows = sharded.train
  dot = sharded.tokenizer().token_to_id(".")
  dots = np.asarray(rows.dots)
  np.testing.assert_array_equal(dots, (np.asarray(rows) == dot).sum(1))
  assert dots.max() > dots.min()
  seen = [sum(1 for t in r if t == dot)
          for r in originals(batches(rows, len(rows) // 8, order="curriculum"))]
  assert seen == sorted(seen, reverse=True) and seen[0] == dots.max()


def test_processes_see_disjoint_parts_of_one_stream(sharded):
  rows = sharded.train
  whole = batches(rows, 4)
  parts = [batches(rows, 2, process_index=i, process_count=2) for i in range(2)]
  # Process i holds examples i, i + 2, i + 4, ... of the single-process stream, masks included.
  for k in whole[0]:
    single = np.concatenate([b[k] for b in whole])
    for i in range(2):
      np.testing.assert_array_equal(np.concatenate([b[k] for b in parts[i]]), single[i::2])


@pytest.mark.parametrize("order,count", [("shuffle", 1), ("curriculum", 1), ("shuffle", 2)])
def test_iterator_state_resumes_exactly(sharded, order, count):
  kw = dict(seed=3, batch_size=8, mask_rate=0.25, vocab_size=VOCAB, threads=2, order=order,
            process_index=count - 1, process_count=count)
  it = iter(loader.pretraining_batches(sharded.train, **kw))
  for _ in range(7):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(3)]
  fresh = iter(loader.pretraining_batches(sharded.train, **kw))
  fresh.set_state(state)
  for a, b in zip(expected, [next(fresh) for _ in range(3)]):
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
