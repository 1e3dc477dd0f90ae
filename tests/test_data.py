import collections
import functools
import itertools
import json
import os
import random
import shutil
import socket
import subprocess

import nltk
import numpy as np
import pytest

from jaxbert.data import (TokenStore, build, corpus, default_config, prepare, sources, store, text,
                          tokenizer, workers)
from jaxbert.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID

SMALL_DOCS = 24  # per split: a few documents of each source, builds in ~1 s
SMALL_VOCAB = 1000


def small_config(cache, **overrides):
  cfg = default_config()
  cfg.cache_dir = str(cache)
  cfg.max_documents = SMALL_DOCS
  cfg.max_token_char_ratio = 0.5  # a 1000-piece vocab splits words finely
  cfg.update(overrides)
  return cfg


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("jaxbert-cache")


@pytest.fixture(scope="module")
def small(cache):
  return prepare(small_config(cache), SMALL_VOCAB)


@pytest.fixture(autouse=True)
def offline(monkeypatch, cache):
  monkeypatch.setenv("JAXBERT_CACHE", str(cache))  # never touch the user's cache

  def refuse(*a, **k):  # everything must come from installed packages
    raise AssertionError("nltk.download called")
  monkeypatch.setattr(nltk, "download", refuse)


# --- NLTK, offline ---------------------------------------------------------

def test_sentences_split_offline_with_the_shipped_tables():
  splitter = text.sentence_splitter()  # the offline fixture refuses nltk.download
  s = "Mr. Smith went to Washington. He arrived at 5 p.m. today."
  assert splitter.tokenize(s) == ["Mr. Smith went to Washington.", "He arrived at 5 p.m. today."]
  assert "mr" in splitter._params.abbrev_types  # learned, not a rule: Mr. ends no sentence


def test_the_shipped_punkt_tables_load_whole():
  """What the splitter loads, written again by the build script, is the shipped files' bytes:
  nothing in them is dropped or misread on the way in."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(
      "punkt_build", os.path.join(os.path.dirname(text.__file__), "punkt", "build.py"))
  build_script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(build_script)
  written = build_script.tables(text.sentence_splitter()._params)
  assert sorted(written) == sorted(text.PUNKT_FILES)
  for name, body in written.items():
    with open(os.path.join(text.PUNKT_DIR, name), encoding="utf-8") as f:
      assert f.read() == body, name


def test_clean():
  s = "Mr. Smith went\tto  Washington.\r\n He arrived at 5 p.m. today; it\u2019s \ufb01ne!"
  assert text.clean(s) == ("Mr. Smith went to Washington. "
                           "He arrived at 5 p.m. today; it\u2019s fine!")
  clean = functools.partial(text.clean, split_sentences=True)
  assert clean(s) == ("Mr. Smith went to Washington.\n"
                      "He arrived at 5 p.m. today; it\u2019s fine!")
  assert clean("A heading\n\nThe text. More text.") == "A heading\nThe text.\nMore text."
  assert text.clean("A heading\n\nThe text. More text.") == "A heading\nThe text. More text."
  no_stop = clean(s, remove_stopwords=True)
  assert no_stop == "Mr. Smith went Washington.\narrived 5 p.m. today; fine!"
  assert text.clean(s, remove_stopwords=True) == no_stop.replace("\n", " ")
  no_punct = clean(s, remove_punctuation=True)
  assert no_punct == "Mr Smith went to Washington\nHe arrived at 5 pm today its fine"
  both = clean(s, remove_stopwords=True, remove_punctuation=True)
  assert both == "Mr Smith went Washington\narrived 5 pm today fine"
  assert text.clean(" \n\n ") == clean(" \n\n ") == ""
  # Its only whitespace is single spaces and newlines, whatever came in (the encoder relies on it).
  odd = "a\x1cb\u2028c\u00a0d\u3000e\x0bf \u0085 g\ufeffh"
  assert set(text.clean(odd)) - set("abcdefgh\ufeff") <= {" ", "\n"}


# --- tokenizer --------------------------------------------------------------

def test_tokenizer_special_ids(tmp_path):
  docs = [text.clean(d) for d in list(corpus.documents("train"))[:6]]
  path = str(tmp_path / "tokenizer.json")
  tokenizer.train(docs, 400, path=path)
  tok = tokenizer.load(path)
  assert (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID) == tokenizer.SPECIAL_IDS == (0, 1, 2, 3, 4)
  assert [tok.token_to_id(t) for t in tokenizer.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
  assert tok.id_to_token(MASK_ID) == "[MASK]" and tok.id_to_token(PAD_ID) == "[PAD]"
  assert tok.get_vocab_size() == 400
  enc = tok.encode("The Whale, \u00e9t\u00e9!", add_special_tokens=False)
  assert tok.decode(enc.ids) == "the whale, ete!"  # lowercased, accents stripped
  assert tok.encode("\u4e2d", add_special_tokens=False).ids == [UNK_ID]


def test_tokenizer_ids_follow_the_tokens_sorted():
  # The trainer numbers tied merges in hash-map order, which changes from run to run; sorted ids
  # make the same tokens always the same ids.
  docs = [text.clean(d) for d in list(corpus.documents("train"))[:60]]
  tok = tokenizer.train(docs, 2000)
  tokens = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
  assert tokens[:5] == list(tokenizer.SPECIAL_TOKENS) and tokens[5:] == sorted(tokens[5:])
  enc = tok.encode("the whale's wonderfully understated performance", add_special_tokens=False)
  assert "[UNK]" not in enc.tokens and tok.decode(enc.ids).startswith("the whale")


ODD_TEXTS = [
    "Caf\u00e9 na\u00efve R\u00e9sum\u00e9, \u00c5ngstr\u00f6m",
    "\u4e2d\u6587\u5b57 mixed\u4e2d\u6587 x", "\U0001F642\U0001F44D ok",
    "[MASK] x[MASK]y [SEP]z [CLS]", "\u039f\u0394\u039f\u03a3 \u0130stanbul",
    "a\u200bb e\u0301 \u0301x \ufeffy", "a" * 70 + " " + "b" * 150 + " short", "3.14159,2 (x)-y",
    "http://example.com/a_b-c?d=e&f=g#h", "don't p.m. U.S.A. \u2014 \u201cquoted\u201d", "",
]


@pytest.mark.parametrize("kind", ["wordpiece", "cased", "bytelevel"])
def test_encoder_gives_the_tokenizers_ids(kind, monkeypatch):
  # The fast path encodes each distinct whitespace chunk once; it must give exactly the
  # tokenizer's ids, cache misses, hits, long chunks and a full cache included. A byte-level
  # BPE (its tokens carry the space) takes the direct path, with the same result.
  from tokenizers import Tokenizer, models, pre_tokenizers, trainers
  docs = [text.clean(d) for d in itertools.islice(corpus.documents("train"), 8)]
  docs += [text.clean(t) for t in ODD_TEXTS]
  if kind == "bytelevel":
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=600, show_progress=False))
  else:
    tok = tokenizer.train(docs, 1000, lowercase=kind == "wordpiece")
  enc = tokenizer.Encoder(tok, np.uint16)
  assert (enc.cache is None) == (kind == "bytelevel")
  want = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
  monkeypatch.setattr(tokenizer.Encoder, "CACHE_CHUNKS", 3000)  # fills up and is cleared
  for half in (docs[::2], docs[1::2], docs):  # cold, then partly warm, then warm
    got = enc(half)
    assert all(g.dtype == np.uint16 for g in got)
    assert [g.tolist() for g in got] == [want[docs.index(d)] for d in half]
  if enc.cache is not None:  # the whole set overflowed the cache: cleared, then refilled
    distinct = {c for d in docs for c in d.split() if len(c) <= enc.CACHED_CHUNK_CHARS}
    assert len(distinct) > 3000 and set(enc.cache) == distinct


def test_sentence_lines_change_no_row(small, cache, monkeypatch):
  # split_sentences only turns spaces into newlines, which WordPiece reads alike: the same rows.
  # (Both encode with one given tokenizer: WordPiece training numbers tied pieces in no fixed
  # order, so two trained ones may differ.)
  calls = collections.Counter()
  splitter = text.sentence_splitter()

  class Counted:  # these small builds clean in this process
    def tokenize(self, paragraph):
      calls["punkt"] += 1
      return splitter.tokenize(paragraph)

  monkeypatch.setattr(text, "sentence_splitter", Counted)
  tok = small.tokenizer_path
  plain = prepare(small_config(cache, max_documents=8, tokenizer=tok), SMALL_VOCAB)
  assert calls["punkt"] == 0  # off by default
  lines = prepare(small_config(cache, max_documents=8, tokenizer=tok, split_sentences=True),
                  SMALL_VOCAB)
  assert calls["punkt"] > 0  # the option reaches the clean-up
  assert plain.path != lines.path
  for sp in ("train", "heldout"):
    np.testing.assert_array_equal(np.asarray(getattr(plain, sp)), np.asarray(getattr(lines, sp)))


# --- token store ------------------------------------------------------------

def test_store_layout(small, cache):
  m = small.manifest
  assert os.path.dirname(small.path) == os.path.join(str(cache), "stores")
  assert sorted(os.listdir(small.path)) == sorted(
      ["manifest.json", "tokenizer.json", "train-00000.npy", "heldout-00000.npy", "unigram.npy",
       "train-dots.npy", "heldout-dots.npy"])
  assert small.train.dtype == np.uint16 and isinstance(small.train.shards[0], np.memmap)
  assert m["shards"]["train"] == [{"file": "train-00000.npy", "rows": len(small.train)}]
  assert m["tokenizer_sha256"] and m["settings"]["tokenizer"]["sample_mb"] == 100
  assert small.train.shape[1] == small.heldout.shape[1] == 128
  assert small.train.shape[0] == m["counts"]["train"]["rows"] > 50
  assert small.unigram.shape == (SMALL_VOCAB,) and small.unigram.dtype == np.int64
  assert m["counts"]["train"]["documents"] == m["counts"]["heldout"]["documents"] == SMALL_DOCS
  assert isinstance(small, TokenStore) and small.vocab_size == SMALL_VOCAB
  assert small.tokenizer().token_to_id("[MASK]") == MASK_ID


def test_packing(small):
  tok = small.tokenizer()
  flat = np.asarray(small.train).reshape(-1)
  assert not (flat == CLS_ID).any() and not (flat == PAD_ID).any()
  # The stream is doc1 [SEP] doc2 [SEP] ...: re-encode the first documents,
  # skipping those the ratio filter (0.5 here) must have dropped.
  docs = (text.clean(d) for d in corpus.documents("train"))
  pos = 0
  for doc in itertools.islice(docs, 4):
    ids = tok.encode(doc, add_special_tokens=False).ids
    if len(ids) > 0.5 * len(doc):
      continue
    n = min(len(ids), len(flat) - pos)
    assert flat[pos:pos + n].tolist() == ids[:n]
    pos += len(ids)
    assert flat[pos] == SEP_ID
    pos += 1
  counts = small.manifest["counts"]["train"]
  assert (flat == SEP_ID).sum() <= counts["documents"] - counts["dropped_ratio"]
  # Only the last partial row is cut.
  assert len(flat) <= counts["tokens"] < len(flat) + 128


def test_unigram(small):
  assert small.unigram.sum() == small.train.size
  counts = np.bincount(np.asarray(small.train).ravel(), minlength=SMALL_VOCAB)
  np.testing.assert_array_equal(small.unigram, counts)


def test_large_vocab_uses_int32(cache):
  s = prepare(small_config(cache, max_documents=4), 70000)
  assert s.train.dtype == np.int32 and s.unigram.shape == (70000,)
  assert s.manifest["trained_vocab_size"] < 70000  # four documents cannot fill it


def test_cache_reuse_and_keys(small, cache):
  manifest_mtime = os.stat(os.path.join(small.path, "manifest.json")).st_mtime_ns
  again = prepare(small_config(cache), SMALL_VOCAB)
  assert again.path == small.path and again.manifest["built_at"] == small.manifest["built_at"]
  assert os.stat(os.path.join(small.path, "manifest.json")).st_mtime_ns == manifest_mtime

  key = lambda cfg, v=SMALL_VOCAB: store.store_key(store.settings(cfg, v))
  base = key(small_config(cache))
  assert base == os.path.basename(small.path)
  for change in [dict(seq_len=64), dict(lowercase=False), dict(remove_stopwords=True),
                 dict(split_sentences=True),
                 dict(remove_punctuation=True), dict(max_token_char_ratio=0.3),
                 dict(max_documents=5), dict(min_chars=10), dict(dedup=True),
                 dict(sources="embedded,embedded"), dict(weights="2"),
                 dict(tokenizer_sample_mb=1.0), dict(skip_bad_records=True),
                 dict(pack="sentences")]:
    assert key(small_config(cache, **change)) != base, change
  assert key(small_config(cache), SMALL_VOCAB + 1) != base
  for same in [dict(cache_dir="elsewhere"), dict(order="curriculum"), dict(workers=1),
               dict(pack="stream"),
               dict(sources=["embedded"]), dict(weights="1")]:  # where and how, not what
    assert key(small_config(cache, **same)) == base, same


def test_interrupted_build_is_ignored(cache):
  cfg = small_config(cache, seq_len=64, max_documents=6)
  final = os.path.join(str(cache), "stores", store.store_key(store.settings(cfg, SMALL_VOCAB)))
  dead = subprocess.Popen(["true"])
  dead.wait()  # a process id that no longer runs
  host = socket.gethostname()
  leftover = f"{final}.tmp-{host}-{dead.pid}-deadbeef"
  running = f"{final}.tmp-{host}-{os.getppid()}-beefdead"  # a build still in progress
  for d in (leftover, running):
    os.makedirs(d)
    open(os.path.join(d, "manifest.json"), "w").write("{")  # half-written
  s = prepare(cfg, SMALL_VOCAB)
  assert s.path == final and s.train.shape[1] == 64 and s.manifest["settings"]["seq_len"] == 64
  assert not os.path.exists(leftover)  # its process is dead: removed
  others = [n for n in os.listdir(os.path.dirname(final)) if ".tmp-" in n]
  assert others == [os.path.basename(running)]
  shutil.rmtree(running)


def test_heldout_split():
  ids = [r["id"] for n in corpus.FILES for r in corpus.records(n)]
  held = {i for i in ids if corpus.split_of(i) == "heldout"}
  per_source = collections.Counter(i.split("/")[0] for i in held)
  assert set(per_source) == {"sotu", "moby-dick", "kjv"}
  # Pinned: the split is a function of the id and must never move.
  assert len(held) == 37 and per_source["sotu"] == 4 and per_source["moby-dick"] == 2
  assert {"sotu/1850_millard_fillmore_w", "moby-dick/chapter_8", "moby-dick/chapter_64",
          "kjv/Ge/26"} <= held
  train, heldout = set(corpus.documents("train")), set(corpus.documents("heldout"))
  assert heldout and not (train & heldout)
  assert 0.02 < len(heldout) / (len(train) + len(heldout)) < 0.03


def test_store_heldout(small):
  assert small.heldout.shape[0] > 0
  assert small.manifest["counts"]["heldout"]["tokens"] >= small.heldout.size


def test_ratio_filter_drops_junk(cache, tmp_path, capsys):
  rng = random.Random(0)
  junk = "".join(rng.choice("!@#$%^&*()[]{}<>?/|~") for _ in range(3000))
  prose = [d for d in corpus.documents("train") if len(d) < 20000][:8]
  train = [d for d in prose if sources.split_of_text(d) == "train"]
  assert sources.split_of_text(junk) == "train" and len(train) >= 6
  path = tmp_path / "docs.jsonl"
  path.write_text("".join(json.dumps({"text": d}) + "\n" for d in prose + [junk]))
  # Punctuation junk is ~1 token per character; prose here stays below 0.5.
  s = prepare(small_config(cache, sources=f"jsonl:{path}", max_documents=0,
                           max_token_char_ratio=0.7), 500)
  c = s.manifest["counts"]
  assert c["train"]["documents"] == len(train) + 1 and c["train"]["dropped_ratio"] == 1
  assert c["heldout"]["documents"] == len(prose) - len(train) and c["heldout"]["dropped_ratio"] == 0
  tok = s.tokenizer()
  kept = [tok.encode(text.clean(d), add_special_tokens=False).ids for d in train]
  assert c["train"]["tokens"] == sum(len(ids) + 1 for ids in kept)  # all but the junk
  # One train document in seven is over the share that makes the build warn; held-out none.
  err = capsys.readouterr().err
  assert (f"warning: 1 of {len(train) + 1} train documents" in err
          and "data.max_token_char_ratio=0.7" in err and "heldout documents" not in err)


def test_everything_filtered_is_an_error(cache):
  with pytest.raises(ValueError, match="max_token_char_ratio=0.2"):
    prepare(small_config(cache, max_documents=3, max_token_char_ratio=0.2), 300)
  stores = os.listdir(os.path.join(str(cache), "stores"))
  assert not [n for n in stores if ".tmp-" in n]  # cleaned up


def test_unknown_source(cache):
  with pytest.raises(ValueError, match=r"'nope'.*embedded, text:GLOB"):
    prepare(small_config(cache, sources="nope"), SMALL_VOCAB)
  assert not os.path.exists(os.path.join(str(cache), "stores", "nope"))


@pytest.mark.slow
def test_worker_processes_build_the_same_store(cache, monkeypatch):
  # Past POOL_AFTER_CHARS the build cleans and encodes in spawned processes; the rows must be
  # those of a serial build. WordPiece training breaks ties in no fixed order, so two builds may
  # number pieces differently: the parallel rows are checked against its own tokenizer.
  monkeypatch.setattr(workers, "POOL_AFTER_CHARS", 0)
  monkeypatch.setattr(build, "BATCH_CHARS", 20000)  # many batches in flight
  serial = prepare(small_config(cache / "serial", workers=1), SMALL_VOCAB)
  parallel = prepare(small_config(cache / "parallel", workers=2), SMALL_VOCAB)
  assert serial.manifest["workers"] == 1 and parallel.manifest["workers"] == 2
  for sp in ("train", "heldout"):
    for key in ("documents", "chars_read", "chars", "empty"):
      assert serial.manifest["counts"][sp][key] == parallel.manifest["counts"][sp][key]
    tok = parallel.tokenizer()
    stream = []
    for doc in itertools.islice(corpus.documents(sp), SMALL_DOCS):
      doc = text.clean(doc)
      ids = tok.encode(doc, add_special_tokens=False).ids
      if len(ids) <= 0.5 * len(doc):
        stream += ids + [SEP_ID]
    rows = np.asarray(getattr(parallel, sp))
    np.testing.assert_array_equal(rows.ravel(), stream[:rows.size])
    assert len(stream) - rows.size < 128
