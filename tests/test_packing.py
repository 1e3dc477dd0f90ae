"""data.pack="sentences": rows of whole sentences, [CLS] ... [SEP] ... [PAD], and their masking."""
import json

import numpy as np
import pytest

from jaxbert import masking
from jaxbert.config import ConfigError
from jaxbert.data import loader, packing, prepare, store, text
from jaxbert.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, SPECIAL_IDS
import test_data
from test_data import SMALL_VOCAB, small_config

cache, offline = test_data.cache, test_data.offline  # its fixtures: one cache, never a download

SEQ_LEN = 16
LONG = ("This is a very long sentence that goes on and on with many words about nothing in "
        "particular, listing apples, pears, plums, cherries, grapes, melons, lemons, limes, figs "
        "and dates until the row is full.")
# Documents and the sentences punkt finds in them, in order.
DOCS = [
    ("The cat sat on the mat. It was warm there. Dogs barked outside.",
     ["The cat sat on the mat.", "It was warm there.", "Dogs barked outside."]),
    ("Rain fell all night long. The river rose by morning.\n\nA heading\n\nShort one. Another "
     "short one here.",
     ["Rain fell all night long.", "The river rose by morning.", "A heading", "Short one.",
      "Another short one here."]),
    (f"{LONG} Then a short end.", [LONG, "Then a short end."]),
    ("Birds sang in the trees. The sun came up slowly. We walked to the market and bought "
     "bread. The bread was still warm.",
     ["Birds sang in the trees.", "The sun came up slowly.",
      "We walked to the market and bought bread.", "The bread was still warm."]),
    ("Hello there. How are you today? I am fine, thank you.",
     ["Hello there.", "How are you today?", "I am fine, thank you."]),
]


@pytest.fixture(scope="module")
def docs_config(cache, tmp_path_factory):
  path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
  path.write_text("".join(json.dumps({"text": d}) + "\n" for d, _ in DOCS * 3))
  return lambda **kw: small_config(cache, sources=f"jsonl:{path}", max_documents=0,
                                   seq_len=SEQ_LEN, max_token_char_ratio=0.0, **kw)


@pytest.fixture(scope="module")
def sentences(docs_config):
  return prepare(docs_config(pack="sentences"), 300)


@pytest.fixture(scope="module")
def stream(docs_config, sentences):
  # The same documents and tokenizer, cut the default way.
  return prepare(docs_config(tokenizer=sentences.tokenizer_path), 300)


def reference_rows(sentences: list[list[int]], seq_len: int) -> np.ndarray:
  """The packing rule written the plain way: one sentence (or piece of one) at a time."""
  rows, row = [], None
  for s in sentences:
    cut = [s[i:i + seq_len - 2] for i in range(0, len(s), seq_len - 2)]
    for piece in cut:
      if row is None or len(row) + len(piece) + 1 > seq_len:
        if row is not None:
          rows.append(row)
        row = [CLS_ID]
      row += piece + [SEP_ID]
  rows.append(row)
  return np.array([r + [PAD_ID] * (seq_len - len(r)) for r in rows])


def store_sentences(s) -> list[list[int]]:
  """The store's sentences, encoded one by one with its tokenizer, in the order of its train
  documents (every document of DOCS lands in train here)."""
  tok = s.tokenizer()
  out = []
  for doc, want in DOCS * 3:
    got = text.clean(doc, split_sentences=True).split("\n")
    assert got == want  # punkt finds the sentences the test expects
    out += [tok.encode(x, add_special_tokens=False).ids for x in got]
  return out


# --- the packing rule ---------------------------------------------------------------------------

def test_pieces():
  np.testing.assert_array_equal(packing.pieces([0, 6, 7, 13, 1], 6), [6, 6, 1, 6, 6, 1, 1])
  assert packing.pieces([], 6).tolist() == []


def test_pack_matches_the_rule_and_does_not_depend_on_the_calls():
  rng = np.random.default_rng(0)
  lengths = rng.choice([0, 1, 3, 5, 9, 14, 15, 40], size=300)
  sentences = [list(rng.integers(5, 1000, n)) for n in lengths]
  ids = np.array([t for s in sentences for t in s], np.uint16)
  whole, rest_ids, rest_lengths = packing.pack(ids, lengths, SEQ_LEN, final=True)
  assert whole.dtype == np.uint16 and not len(rest_ids) and not len(rest_lengths)
  np.testing.assert_array_equal(whole, reference_rows(sentences, SEQ_LEN))
  # In calls of a few sentences each, the open row carried from one to the next.
  rows, carry, start = [], (ids[:0], np.zeros(0, np.int64)), 0
  for stop in (*range(7, 300, 7), 300):
    n = int(lengths[start:stop].sum())
    offset = int(lengths[:start].sum())
    out, *carry = packing.pack(np.concatenate([carry[0], ids[offset:offset + n]]),
                               np.concatenate([carry[1], lengths[start:stop]]), SEQ_LEN,
                               final=False)
    rows.append(out)
    start = stop
  rows.append(packing.pack(*carry, SEQ_LEN, final=True)[0])
  np.testing.assert_array_equal(np.concatenate(rows), whole)


def test_pack_errors():
  with pytest.raises(ValueError, match="seq_len=2"):
    packing.pack(np.zeros(1, np.int32), [1], 2, final=True)
  with pytest.raises(ValueError, match="3 ids"):
    packing.pack(np.zeros(3, np.int32), [2], 8, final=True)


# --- a store of sentence rows -------------------------------------------------------------------

def test_sentence_store_rows(sentences):
  rows = np.asarray(sentences.train)
  assert sentences.train.pack == "sentences" and rows.shape[1] == SEQ_LEN
  np.testing.assert_array_equal(rows, reference_rows(store_sentences(sentences), SEQ_LEN))
  assert (rows[:, 0] == CLS_ID).all() and not (rows[:, 1:] == CLS_ID).any()
  real = rows != PAD_ID
  # Pads only at the end, after the row's last [SEP].
  assert (np.diff(real.astype(int), axis=1) <= 0).all()
  last = real.sum(1) - 1
  assert (rows[np.arange(len(rows)), last] == SEP_ID).all()


def test_no_sentence_is_split_unless_longer_than_a_row(sentences):
  encoded = store_sentences(sentences)
  pieces = []  # each row's runs of tokens between [CLS]/[SEP]s
  for row in np.asarray(sentences.train):
    body = row[1:][row[1:] != PAD_ID].tolist()
    while body:
      end = body.index(SEP_ID)
      pieces.append(body[:end])
      body = body[end + 1:]
  i = 0
  for s in encoded:
    if len(s) <= SEQ_LEN - 2:
      assert pieces[i] == s  # whole, in one row
      i += 1
    else:
      assert len(s) > SEQ_LEN - 2
      cut = -(-len(s) // (SEQ_LEN - 2))
      assert sum(pieces[i:i + cut], []) == s and all(len(p) == SEQ_LEN - 2
                                                     for p in pieces[i:i + cut - 1])
      i += cut
  assert i == len(pieces)


def test_sentence_store_counts_and_unigram(sentences, capsys):
  rows = np.asarray(sentences.train)
  k = sentences.manifest["counts"]["train"]
  encoded = store_sentences(sentences)
  assert k["rows"] == len(rows) and k["tokens"] == int((rows != PAD_ID).sum())
  assert k["sentences"] == len(encoded) and k["long_sentences"] == 3  # LONG, in each copy
  assert 0 < k["tokens"] < rows.size
  counts = np.bincount(rows[rows != PAD_ID], minlength=len(sentences.unigram))
  np.testing.assert_array_equal(sentences.unigram, counts)
  assert sentences.unigram[PAD_ID] == 0
  fill = k["tokens"] / rows.size
  assert f"fill {fill:.1%}" in store.summary(sentences)


def test_sentence_store_key(cache):
  key = lambda **kw: store.store_key(store.settings(small_config(cache, **kw), SMALL_VOCAB))
  assert key() == key(pack="stream")
  assert "pack" not in store.settings(small_config(cache), SMALL_VOCAB)  # stream keys as before
  assert key(pack="sentences") != key()
  # Sentence rows always split sentences: both values of split_sentences name one store.
  assert key(pack="sentences") == key(pack="sentences", split_sentences=True)
  with pytest.raises(ConfigError, match="data.pack='words'"):
    key(pack="words")
  with pytest.raises(ConfigError, match="data.seq_len=2"):
    key(pack="sentences", seq_len=2)


def test_batches_and_worker_processes_give_the_same_rows(docs_config, sentences, monkeypatch):
  # Many small encode batches, in spawned processes: the open row carried from batch to batch.
  from jaxbert.data import build, workers
  monkeypatch.setattr(workers, "POOL_AFTER_CHARS", 0)
  monkeypatch.setattr(build, "BATCH_CHARS", 300)
  again = prepare(docs_config(pack="sentences", tokenizer=sentences.tokenizer_path, workers=2),
                  300)
  assert again.path != sentences.path and again.manifest["workers"] == 2
  np.testing.assert_array_equal(np.asarray(again.train), np.asarray(sentences.train))
  assert again.manifest["counts"]["train"] == sentences.manifest["counts"]["train"]


# --- masking and attention ----------------------------------------------------------------------

def batches(rows, n=6, **kw):
  kw = dict(seed=3, batch_size=4, mask_rate=0.25, vocab_size=300, threads=1,
            process_index=0, process_count=1) | kw
  it = iter(loader.pretraining_batches(rows, **kw))
  return [next(it) for _ in range(n)]


def test_masking_of_sentence_rows(sentences):
  rows = np.asarray(sentences.train)
  count = masking.num_masked(0.25, SEQ_LEN)
  for b in batches(sentences.train, n=2 * len(rows)):
    original = b["inputs"].copy()
    np.put_along_axis(original, b["positions"], b["targets"], 1)
    np.testing.assert_array_equal(b["attention_mask"], original != PAD_ID)
    assert b["positions"].shape == b["weights"].shape == (4, count)
    ordinary = ~np.isin(original, SPECIAL_IDS)
    chosen = b["weights"] > 0
    picked = np.take_along_axis(original, b["positions"], 1)
    assert not np.isin(picked[chosen], SPECIAL_IDS).any()  # never [CLS], [SEP] or [PAD]
    want = np.maximum(1, np.round(0.25 * ordinary.sum(1)))
    np.testing.assert_array_equal(chosen.sum(1), want)
    # A pick of weight 0 leaves its token as it was.
    unchosen = np.take_along_axis(b["inputs"], b["positions"], 1)[~chosen]
    np.testing.assert_array_equal(unchosen, picked[~chosen])
    assert (np.diff(b["positions"], axis=1) > 0).all()


def test_rate_masking_is_uniform_over_a_rows_ordinary_tokens():
  row = np.array([CLS_ID] + list(range(10, 30)) + [SEP_ID] + [PAD_ID] * 10)
  n = 4000
  out = masking.mask_rows(np.tile(row, (n, 1)), 0, np.arange(n), count=8, mask_id=4,
                          vocab_size=300, special_ids=SPECIAL_IDS, rate=0.25)
  assert (out["weights"].sum(1) == 5).all()  # round(0.25 × 20) of the 8 slots
  hits = np.bincount(out["positions"][out["weights"] > 0], minlength=len(row))
  assert hits[[0, 21, *range(22, 32)]].sum() == 0
  p = 5 / 20
  assert np.abs(hits[1:21] - n * p).max() < 4.5 * np.sqrt(n * p * (1 - p))


def test_heldout_batches_of_a_plain_array_take_the_pack(sentences):
  rows = np.asarray(sentences.train)
  kw = dict(seed=1, batch_size=5, mask_rate=0.25, vocab_size=300)
  from_store = list(loader.heldout_batches(sentences.train, **kw))
  given = list(loader.heldout_batches(rows, pack="sentences", **kw))
  assert len(from_store) == len(given) > 0
  for a, b in zip(from_store, given):
    assert set(a) == set(b) == {"inputs", "positions", "targets", "weights", "attention_mask"}
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  with pytest.raises(ValueError, match="pack"):
    list(loader.heldout_batches(rows, pack="words", **kw))


def test_stream_rows_and_batches_are_unchanged(stream, sentences):
  assert stream.train.pack == "stream" and "sentences" not in stream.manifest["counts"]["train"]
  # Documents joined by [SEP] and cut in rows: no [CLS], no padding, the tail dropped.
  tok = stream.tokenizer()
  joined = sum((tok.encode(text.clean(d), add_special_tokens=False).ids + [SEP_ID]
                for d, _ in DOCS * 3), [])
  flat = np.asarray(stream.train).ravel()
  assert len(joined) - SEQ_LEN < len(flat) <= len(joined)
  np.testing.assert_array_equal(flat, joined[:len(flat)])
  # The sentence rows hold the same text tokens, in the same order.
  rows = np.asarray(sentences.train).ravel()
  np.testing.assert_array_equal(rows[~np.isin(rows, SPECIAL_IDS)],
                                [t for t in joined if t != SEP_ID])
  for b in batches(stream.train):
    assert set(b) == {"inputs", "positions", "targets", "weights"}  # no attention mask
    # Every slot predicts: exactly round(rate × seq_len) positions per row, as before.
    assert (b["weights"].sum(1) == masking.num_masked(0.25, SEQ_LEN)).all()


@pytest.mark.slow
def test_the_loss_ignores_what_stands_at_pads(sentences):
  import jax
  import jax.numpy as jnp

  from jaxbert.model import MaskedLM, ModelConfig
  from jaxbert.pretrain import step

  # A large init makes attention far from uniform, so what stands at an unmasked pad moves the
  # loss well above float32 noise (at std 0.02 it moved it by about 1e-5).
  model = MaskedLM(ModelConfig(vocab_size=300, num_layers=2, hidden_size=16, num_heads=2,
                               ffn_size=32, max_len=SEQ_LEN, dtype="float32", init_std=0.5))
  b = batches(sentences.train, n=1)[0]
  params = model.init(jax.random.key(0), jnp.asarray(b["inputs"]),
                      jnp.asarray(b["positions"]))["params"]
  loss = lambda batch: step.mlm_loss(model, params, jax.tree.map(jnp.asarray, batch),
                                     jax.random.key(1), True)[0]
  other = dict(b, inputs=np.where(b["attention_mask"], b["inputs"], 7))
  assert b["attention_mask"].all(1).sum() < len(b["inputs"])  # some pads in the batch
  np.testing.assert_allclose(loss(other), loss(b), rtol=1e-5)
  unmasked = {k: v for k, v in other.items() if k != "attention_mask"}
  assert abs(float(loss(unmasked)) - float(loss(b))) > 1e-4  # the mask is what hides them
