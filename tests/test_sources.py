"""Sources (text, jsonl, parquet, tfds, embedded), their mix, and the bad-input catalogue."""
import gzip
import lzma
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxbert.config import ConfigError
from jaxbert.data import default_config, prepare, readers, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 300
WORDS = ("the whale swam under a grey sky while sailors sang of home and bread and the long "
         "voyage ahead of them").split()


def prose(rng, sentences: int) -> str:
  return " ".join(" ".join(rng.choice(WORDS, rng.integers(5, 12))).capitalize() + "."
                  for _ in range(sentences))


def config(cache, sources_spec, **overrides):
  cfg = default_config()
  cfg.cache_dir = str(cache)
  cfg.sources = sources_spec
  cfg.seq_len = 32
  cfg.max_token_char_ratio = 0.0
  cfg.update(overrides)
  return cfg


def all_docs(source) -> list[str]:
  return list(source.documents("train", None)) + list(source.documents("heldout", None))


def write_docs(path, docs, sep="\n\n"):
  data = sep.join(docs).encode()
  if str(path).endswith(".gz"):
    data = gzip.compress(data)
  elif str(path).endswith(".xz"):
    data = lzma.compress(data)
  path.write_bytes(data)


@pytest.fixture
def cache(tmp_path):
  return tmp_path / "cache"


# --- sources -------------------------------------------------------------------------------------

def test_text_source_blocks_gzip_and_directories(tmp_path):
  rng = np.random.default_rng(0)
  a = [prose(rng, 3) for _ in range(5)]
  b = [prose(rng, 2) for _ in range(4)]
  (tmp_path / "corpus" / "sub").mkdir(parents=True)
  write_docs(tmp_path / "corpus" / "a.txt", a, sep="\n  \n")  # a blank line may hold spaces
  write_docs(tmp_path / "corpus" / "sub" / "b.txt.gz", b, sep="\r\n\r\n")
  write_docs(tmp_path / "corpus" / "sub" / "c.txt.xz", a[:2])
  (tmp_path / "corpus" / "notes.md").write_text("not a .txt file")
  src = sources.parse(f"text:{tmp_path / 'corpus'}")  # a directory: every .txt(.gz, .xz) below
  assert sorted(all_docs(src)) == sorted(a + b + a[:2])
  glob_src = sources.parse(f"text:{tmp_path}/corpus/*.txt")
  assert sorted(all_docs(glob_src)) == sorted(a)
  # Split by a hash of the text: stable, and both splits together hold every document once.
  train = list(src.documents("train", None))
  assert all(sources.split_of_text(d) == "train" for d in train)


def test_jsonl_source_field_and_gzip(tmp_path):
  rows = [{"body": f"Document {i} says hello.", "id": i} for i in range(6)]
  with gzip.open(tmp_path / "x.jsonl.gz", "wt") as f:
    f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")  # a blank line is skipped
  src = sources.parse(f"jsonl:{tmp_path}/*.jsonl.gz:body")
  assert sorted(all_docs(src)) == sorted(r["body"] for r in rows)
  with lzma.open(tmp_path / "z.jsonl.xz", "wt") as f:
    f.write(json.dumps(rows[0]) + "\n")
  assert all_docs(sources.parse(f"jsonl:{tmp_path}/z.jsonl.xz:body")) == [rows[0]["body"]]
  default_field = tmp_path / "y.jsonl"
  default_field.write_text(json.dumps({"text": "Only one."}) + "\n")
  assert all_docs(sources.parse(f"jsonl:{default_field}")) == ["Only one."]


def test_weights_repeat_documents_deterministically(tmp_path):
  rng = np.random.default_rng(1)
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  write_docs(tmp_path / "a" / "a.txt", [prose(rng, 2) for _ in range(200)])
  write_docs(tmp_path / "b" / "b.txt", [prose(rng, 2) for _ in range(200)])
  a, b = sources.parse(f"text:{tmp_path}/a"), sources.parse(f"text:{tmp_path}/b")
  na, nb = len(list(a.documents("train", None))), len(list(b.documents("train", None)))
  stats = [sources.new_stats(), sources.new_stats()]
  mix = list(sources.mixed([a, b], [1.0, 2.5], "train", stats))
  fresh = lambda: [sources.new_stats(), sources.new_stats()]
  assert mix == list(sources.mixed([a, b], [1.0, 2.5], "train", fresh()))  # deterministic
  from_b = [d for d in mix if d in set(b.documents("train", None))]
  assert len(mix) - len(from_b) == na
  assert 2 * nb + 0.35 * nb < len(from_b) < 2 * nb + 0.65 * nb  # the half pass: about half
  assert stats[1]["files"] == 1  # a file counts once, however many passes read it
  # Round-robin: the first documents alternate between the sources.
  assert mix[0] in set(a.documents("train", None)) and mix[1] in set(from_b)
  held = list(sources.mixed([a, b], [1.0, 2.5], "heldout", fresh()))
  assert len(held) == len(all_docs(a)) + len(all_docs(b)) - na - nb  # held-out: once each
  with pytest.raises(ConfigError, match="one positive number per source"):
    sources.weights_for(["embedded", "text:x"], "1")
  with pytest.raises(ConfigError, match="data.weights"):
    sources.weights_for(["embedded"], [0])


def test_task_source_brings_train_texts_and_never_dev_text_into_the_store(tmp_path, cache):
  """task:file:PATH with no dev file: the rows finetune.dev_fraction holds out as dev stay out
  of the store, in both of its splits, while every train row is in it."""
  rng = np.random.default_rng(3)
  rows = [(f"{prose(rng, 2)} trainword{i}", "pos" if i % 2 else "neg") for i in range(60)]
  path = tmp_path / "reviews.csv"
  with open(path, "w") as f:
    f.write("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
  from jaxbert.data import labelled
  task = labelled.load(f"file:{path}")[0]
  dev = set(task.dev["dev"].text_a)
  assert 0 < len(dev) < len(rows) and not dev & set(task.train.text_a)
  source = sources.parse(f"task:file:{path}")
  assert sorted(all_docs(source)) == sorted(task.train.text_a)
  assert list(source.documents("heldout", None)) == []
  store = prepare(config(cache, ["embedded", f"task:file:{path}"], max_documents=0), VOCAB)
  tokenizer = store.tokenizer()
  stored = [r for split in (store.train, store.heldout) for r in np.asarray(split[:len(split)])]
  text = " ".join(tokenizer.decode([int(t) for t in row]) for row in stored)
  marker = lambda t: t.rsplit(" ", 1)[1]  # trainwordN: unique to its row
  seen = lambda t: re.search(rf"\b{marker(t)}\b", text.replace(" ##", "")) is not None
  assert all(seen(t) for t in task.train.text_a)
  assert not any(seen(t) for t in dev)
  with pytest.raises(ConfigError, match="not a task"):
    sources.parse("task:nonsense")


def test_mixed_sources_prepare_and_manifest(tmp_path, cache):
  rng = np.random.default_rng(2)
  (tmp_path / "txt").mkdir()
  write_docs(tmp_path / "txt" / "a.txt", [prose(rng, 4) for _ in range(60)])
  with open(tmp_path / "b.jsonl", "w") as f:
    for _ in range(60):
      f.write(json.dumps({"text": prose(rng, 4)}) + "\n")
  spec = ["embedded", f"text:{tmp_path}/txt", f"jsonl:{tmp_path}/b.jsonl"]
  s = prepare(config(cache, spec, weights="1,2,1", max_documents=200), VOCAB)
  m = s.manifest
  assert [x["spec"] for x in m["settings"]["sources"]] == spec
  assert [x["weight"] for x in m["settings"]["sources"]] == [1.0, 2.0, 1.0]
  assert m["counts"]["train"]["documents"] == 200 and len(s.train) > 100
  assert [x["files"] for x in m["sources"]] == [0, 1, 1]
  # The same spec as a comma-separated string is the same store; a changed file rebuilds.
  again = prepare(config(cache, ",".join(spec), weights=[1, 2, 1], max_documents=200), VOCAB)
  assert again.path == s.path
  with open(tmp_path / "b.jsonl", "a") as f:
    f.write(json.dumps({"text": "One more document."}) + "\n")
  assert prepare(config(cache, spec, weights="1,2,1", max_documents=200), VOCAB).path != s.path


def test_dedup_and_min_chars(tmp_path, cache):
  rng = np.random.default_rng(3)
  docs = [prose(rng, 3) for _ in range(40)]
  write_docs(tmp_path / "a.txt", docs + docs[:10] + ["Too short."] * 3)
  cfg = config(cache, f"text:{tmp_path}/a.txt", dedup=True, min_chars=20)
  k = {sp: c for sp, c in prepare(cfg, VOCAB).manifest["counts"].items()}
  total = lambda key: k["train"][key] + k["heldout"][key]
  assert total("documents") == 53
  assert total("dropped_short") == 3 and total("dropped_duplicate") == 10
  plain = prepare(config(cache, f"text:{tmp_path}/a.txt"), VOCAB).manifest["counts"]
  assert plain["train"]["dropped_duplicate"] == plain["train"]["dropped_short"] == 0


# --- TFDS, without TensorFlow ----------------------------------------------------------------

def _build_tfds(data_dir, docs):
  import tensorflow_datasets as tfds

  class TinyText(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, d in enumerate(docs):
        yield i, {"text": d}

  TinyText(data_dir=str(data_dir), file_format="array_record").download_and_prepare()


def test_tfds_source_reads_array_record(tmp_path, cache):
  rng = np.random.default_rng(4)
  docs = [prose(rng, 3) for _ in range(30)]
  _build_tfds(tmp_path / "tfds", docs)
  src = sources.parse("tfds:tiny_text:train", tfds_dir=str(tmp_path / "tfds"))
  assert sorted(all_docs(src)) == sorted(docs)
  s = prepare(config(cache, "tfds:tiny_text", tfds_data_dir=str(tmp_path / "tfds")), VOCAB)
  assert s.manifest["counts"]["train"]["documents"] + \
      s.manifest["counts"]["heldout"]["documents"] == 30
  with pytest.raises(ConfigError, match=r"no split 'test'.*\['train'\]"):
    sources.parse("tfds:tiny_text:test", tfds_dir=str(tmp_path / "tfds"))


def test_tfds_unprepared_or_tfrecord_is_a_quick_clear_error(tmp_path):
  t0 = time.time()
  with pytest.raises(FileNotFoundError, match=r"wikipedia/20230601.en is not prepared in .*"
                     r"tfds build wikipedia/20230601.en --file_format=array_record"):
    sources.parse("tfds:wikipedia/20230601.en:train", tfds_dir=str(tmp_path))
  # A dataset stored as tfrecord (what TFDS writes by default) needs TensorFlow to read.
  d = tmp_path / "old_text" / "1.0.0"
  d.mkdir(parents=True)
  (d / "dataset_info.json").write_text(json.dumps(
      {"name": "old_text", "splits": [{"name": "train"}], "version": "1.0.0"}))
  with pytest.raises(ConfigError, match="stored as tfrecord, which needs TensorFlow"):
    sources.parse("tfds:old_text", tfds_dir=str(tmp_path))
  assert time.time() - t0 < 10


# --- bad input ---------------------------------------------------------------------------------

def test_binary_file_is_skipped_and_counted(tmp_path, cache, capfd):
  rng = np.random.default_rng(5)
  write_docs(tmp_path / "good.txt", [prose(rng, 3) for _ in range(30)])
  (tmp_path / "image.txt").write_bytes(bytes(range(256)) * 64)  # NUL bytes: not text
  s = prepare(config(cache, f"text:{tmp_path}/*.txt"), VOCAB)
  src = s.manifest["sources"][0]
  assert src["files"] == 2 and src["binary_files"] == 1
  assert sum(c["documents"] for c in s.manifest["counts"].values()) == 30
  assert "image.txt: binary" in capfd.readouterr().err


def test_invalid_utf8_is_replaced_counted_and_reported(tmp_path, cache, capfd):
  rng = np.random.default_rng(6)
  good = [prose(rng, 3) for _ in range(30)]
  bad = b"\n\nBad \xff\xfe bytes \xc3 here."
  (tmp_path / "a.txt").write_bytes("\n\n".join(good).encode() + bad)
  s = prepare(config(cache, f"text:{tmp_path}/a.txt"), VOCAB)
  assert s.manifest["sources"][0]["invalid_utf8_replaced"] == 3
  assert "3 invalid UTF-8 sequences replaced" in capfd.readouterr().err
  docs = all_docs(sources.parse(f"text:{tmp_path}/a.txt"))
  assert "Bad \ufffd\ufffd bytes \ufffd here." in docs
  # The same through jsonl: the line decodes with replacements, then parses.
  (tmp_path / "b.jsonl").write_bytes(b'{"text": "caf\xe9 au lait"}\n')
  assert all_docs(sources.parse(f"jsonl:{tmp_path}/b.jsonl")) == ["caf\ufffd au lait"]


def test_empty_file_is_skipped_and_empty_corpus_is_an_error(tmp_path, cache):
  rng = np.random.default_rng(7)
  write_docs(tmp_path / "a.txt", [prose(rng, 3) for _ in range(30)])
  (tmp_path / "empty.txt").write_bytes(b"")
  gzip_empty = tmp_path / "empty2.txt.gz"
  gzip_empty.write_bytes(gzip.compress(b""))
  s = prepare(config(cache, f"text:{tmp_path}/*"), VOCAB)
  assert s.manifest["sources"][0]["empty_files"] == 2
  assert sum(c["documents"] for c in s.manifest["counts"].values()) == 30

  (tmp_path / "only").mkdir()
  (tmp_path / "only" / "e.txt").write_bytes(b"")
  (tmp_path / "only" / "blank.txt").write_text("\n\n   \n")
  with pytest.raises(ConfigError, match=r"no training documents .*2 files, 1 empty"):
    prepare(config(cache, f"text:{tmp_path}/only"), VOCAB)
  assert not [n for n in os.listdir(cache / "stores") if ".tmp-" in n]


def test_missing_path_is_an_error_naming_it(tmp_path, cache):
  missing = tmp_path / "nowhere" / "*.txt"
  with pytest.raises(FileNotFoundError, match=re.escape(f"text:{missing} matches no file")):
    prepare(config(cache, f"embedded,text:{missing}"), VOCAB)
  (tmp_path / "a.md").write_text("x")
  with pytest.raises(FileNotFoundError, match=r"matches 1 files but none ending in \.jsonl"):
    prepare(config(cache, f"jsonl:{tmp_path}/*"), VOCAB)
  assert not os.path.exists(cache / "stores")  # nothing was built


def test_bad_json_line_names_file_and_line_or_is_skipped(tmp_path, cache):
  rng = np.random.default_rng(8)
  lines = [json.dumps({"text": prose(rng, 3)}) for _ in range(30)]
  path = tmp_path / "a.jsonl"
  path.write_text("\n".join(lines[:10] + ["{not json"] + lines[10:20]
                            + [json.dumps({"body": "no text field"})] + lines[20:]) + "\n")
  with pytest.raises(ConfigError, match=re.escape(f"{path}:11: not JSON")):
    prepare(config(cache, f"jsonl:{path}"), VOCAB)
  path2 = tmp_path / "b.jsonl"
  path2.write_text("\n".join(lines[:5] + [json.dumps({"body": "no text field"})]) + "\n")
  with pytest.raises(ConfigError, match=re.escape(f"{path2}:6: no string field 'text'")):
    prepare(config(cache, f"jsonl:{path2}"), VOCAB)
  s = prepare(config(cache, f"jsonl:{path}", skip_bad_records=True), VOCAB)
  assert s.manifest["sources"][0]["bad_records"] == 2
  assert sum(c["documents"] for c in s.manifest["counts"].values()) == 30


def test_bad_input_is_a_one_line_error_from_run_py(tmp_path):
  proc = subprocess.run(
      [sys.executable, "run.py", "--mode=prepare", "--config=configs/tiny.py",
       f"--config.data.sources=text:{tmp_path}/missing/*.txt"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: data.sources: text:{tmp_path}/missing/*.txt matches no file")


@pytest.mark.slow
def test_one_100mb_line_prepares_in_bounded_memory(tmp_path):
  # One line, no newline at all: read in chunks and cut into pieces, never held whole.
  rng = np.random.default_rng(9)
  sentence = [prose(rng, 1) + " " for _ in range(1000)]
  block = "".join(sentence).encode()
  path = tmp_path / "line.txt"
  with open(path, "wb") as f:
    for _ in range(100_000_000 // len(block) + 1):
      f.write(block)
  assert os.path.getsize(path) >= 100_000_000
  env = dict(os.environ, JAXBERT_CACHE=str(tmp_path / "cache"))
  # A parent that reports its children's peak RSS (run.py's and its cleaning workers' largest).
  report = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
  proc = subprocess.run(
      [sys.executable, "-c", report, sys.executable, "run.py", "--mode=prepare",
       "--config=configs/tiny.py", f"--config.data.sources=text:{path}",
       "--config.data.max_documents=0", "--config.data.tokenizer_sample_mb=10"],
      cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  peak_mb = int(proc.stdout.split()[-1]) / 1024
  assert peak_mb < 2000, peak_mb
  manifest = json.load(open(os.path.join(proc.stdout.split()[2], "manifest.json")))
  counts = manifest["counts"]
  assert counts["train"]["chars_read"] + counts["heldout"]["chars_read"] >= 100_000_000
  pieces = os.path.getsize(path) // readers.MAX_DOC_CHARS  # cut at whitespace: a few more
  assert pieces <= counts["train"]["documents"] + counts["heldout"]["documents"] <= pieces + 2
  assert manifest["sources"][0]["files"] == 1


# --- parquet -------------------------------------------------------------------------------------

def _write_parquet(path, columns, row_group_size=None, compression="snappy"):
  import pyarrow as pa
  import pyarrow.parquet as pq

  pq.write_table(pa.table(columns), path, row_group_size=row_group_size, compression=compression)


def _parquet_corpus(directory, rng, files=3, rows=120, group=25) -> list[list]:
  """`files` parquet files (written last to first, so the sorted order is not the creation
  order) of `rows` rows in row groups of `group`: column text, with a null and an empty value
  in each file, and column body; returns each file's text column."""
  directory.mkdir(exist_ok=True)
  texts = []
  for i in range(files):
    text = [prose(rng, 4) for _ in range(rows)]
    text[3], text[rows // 2] = None, ""
    texts.append(text)
  for i in reversed(range(files)):
    _write_parquet(directory / f"part-{i}.parquet",
                   {"text": texts[i], "body": [f"Body {i}-{j} of the file." for j in range(rows)]},
                   row_group_size=group)
  return texts


def test_parquet_source_reads_the_column_in_order(tmp_path):
  import pyarrow.parquet as pq

  texts = _parquet_corpus(tmp_path / "pq", np.random.default_rng(10))
  assert pq.ParquetFile(tmp_path / "pq" / "part-0.parquet").num_row_groups == 5
  values = [t for text in texts for t in text if t]  # null and empty values are no documents
  src = sources.parse(f"parquet:{tmp_path}/pq/*.parquet")
  for split in ("train", "heldout"):
    want = [t for t in values if sources.split_of_text(t) == split]
    assert list(src.documents(split, None)) == want and want
  assert list(readers.parquet_documents(str(tmp_path / "pq" / "part-1.parquet"), "text",
                                        None)) == [t for t in texts[1] if t]
  # A directory means every .parquet below it; the column option reads another column.
  assert sorted(all_docs(sources.parse(f"parquet:{tmp_path}/pq"))) == sorted(values)
  body = all_docs(sources.parse(f"parquet:{tmp_path}/pq/*.parquet:body"))
  assert sorted(body) == sorted(f"Body {i}-{j} of the file." for i in range(3) for j in range(120))
  # A ':' inside the glob is part of it: only an identifier after the last ':' is a column.
  (tmp_path / "c:corpus").mkdir()
  _write_parquet(tmp_path / "c:corpus" / "a.parquet", {"text": ["Only this one."]})
  assert all_docs(sources.parse(f"parquet:{tmp_path}/c:corpus/*.parquet")) == ["Only this one."]
  # A binary column is decoded, bad bytes replaced and counted as in text files.
  _write_parquet(tmp_path / "raw.parquet", {"text": [b"caf\xe9 au lait", None]})
  stats = sources.new_stats()
  raw = sources.parse(f"parquet:{tmp_path}/raw.parquet")
  # Counted on the train pass only, as the build does.
  read = list(raw.documents("train", stats)) + list(raw.documents("heldout", None))
  assert read == ["caf\ufffd au lait"]
  assert stats["invalid_utf8_replaced"] == 1 and stats["files"] == 1


def test_parquet_fingerprint_follows_files_and_column(tmp_path):
  texts = _parquet_corpus(tmp_path / "pq", np.random.default_rng(11), files=2, rows=10, group=5)
  spec = f"parquet:{tmp_path}/pq/*.parquet"
  first = sources.parse(spec).fingerprint()
  assert sources.parse(spec).fingerprint() == first
  assert sources.parse(spec + ":body").fingerprint() != first
  _write_parquet(tmp_path / "pq" / "part-1.parquet", {"text": texts[1][:-1], "body": ["x"] * 9})
  assert sources.parse(spec).fingerprint() != first
  _write_parquet(tmp_path / "pq" / "part-2.parquet", {"text": ["One more document."]})
  assert len({first, sources.parse(spec).fingerprint()}) == 2


def test_parquet_errors_name_the_glob_the_file_and_its_columns(tmp_path):
  path = tmp_path / "a.parquet"
  _write_parquet(path, {"id": [1, 2], "content": ["One.", "Two."]})
  with pytest.raises(ConfigError, match=re.escape(
      f"data.sources: {path} has no column 'text' (its columns: id, content); name the text "
      f"column: parquet:GLOB:COLUMN")):
    sources.parse(f"parquet:{tmp_path}/*.parquet")
  assert all_docs(sources.parse(f"parquet:{tmp_path}/*.parquet:content")) == ["One.", "Two."]
  with pytest.raises(ConfigError, match=re.escape(f"{path}: column 'id' holds int64, not text")):
    sources.parse(f"parquet:{tmp_path}/*.parquet:id")
  missing = f"{tmp_path}/nowhere/*.parquet"
  with pytest.raises(FileNotFoundError, match=re.escape(f"parquet:{missing} matches no file")):
    sources.parse(f"parquet:{missing}:content")
  bad = tmp_path / "b.parquet"
  bad.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
  with pytest.raises(ConfigError, match=re.escape(f"{bad} is not a parquet file (") +
                     r".*Git LFS pointer"):
    sources.parse(f"parquet:{tmp_path}/*.parquet:content")
  bad.write_text("plain text, not parquet")
  with pytest.raises(ConfigError, match=re.escape(f"{bad} is not a parquet file")) as e:
    sources.parse(f"parquet:{tmp_path}/b.parquet")
  assert "\n" not in str(e.value)
  # An empty file is skipped and counted, as an empty text file is.
  bad.write_bytes(b"")
  stats = sources.new_stats()
  src = sources.parse(f"parquet:{tmp_path}/*.parquet:content")
  read = list(src.documents("train", stats)) + list(src.documents("heldout", None))
  assert sorted(read) == ["One.", "Two."]
  assert stats["empty_files"] == 1 and stats["files"] == 2


def test_parquet_is_read_one_bounded_batch_at_a_time(tmp_path, monkeypatch):
  import pyarrow as pa
  import pyarrow.parquet as pq

  rng = np.random.default_rng(12)
  many = tmp_path / "many.parquet"
  _write_parquet(many, {"text": [prose(rng, 2) for _ in range(400)], "other": ["x" * 500] * 400},
                 row_group_size=10)
  assert pq.ParquetFile(many).num_row_groups == 40
  pulled, real = [], pq.ParquetFile.iter_batches

  def spy(self, *args, **kwargs):
    for batch in real(self, *args, **kwargs):
      pulled.append(batch)
      yield batch

  monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
  monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 4)
  docs = readers.parquet_documents(str(many), "text", None)
  next(docs)
  assert len(pulled) == 1  # nothing read ahead of the document asked for
  assert len(list(docs)) == 399
  assert len(pulled) >= 100 and sum(b.num_rows for b in pulled) == 400
  assert all(b.num_rows <= 4 and b.schema.names == ["text"] for b in pulled)  # one column only
  monkeypatch.undo()

  # One row group of 32 MB, uncompressed: Arrow holds about 10 MB at most, whatever the size of
  # the row group (pyarrow's default, pre_buffer=True, would hold all of its column chunk).
  big = tmp_path / "big.parquet"
  _write_parquet(big, {"text": [f"{i} " + "word " * 800 for i in range(8000)]},
                 compression="none")
  assert pq.ParquetFile(big).num_row_groups == 1 and os.path.getsize(big) > 32e6
  base, peak, n = pa.total_allocated_bytes(), 0, 0
  for _ in readers.parquet_documents(str(big), "text", None):
    peak, n = max(peak, pa.total_allocated_bytes() - base), n + 1
  assert n == 8000 and peak < 16e6, peak


def test_parquet_source_trains_and_evaluates(tmp_path):
  from jaxbert import config as config_lib
  from jaxbert.data import store
  from jaxbert.pretrain import loop
  from jaxbert.workdir import metrics

  sys.path.insert(0, ROOT)
  from configs import tiny

  texts = _parquet_corpus(tmp_path / "pq", np.random.default_rng(13))
  config = tiny.get_config()
  config.data.sources = f"parquet:{tmp_path}/pq/*.parquet"
  config.data.max_documents = 0  # all of them: every file, row group and null
  config.train.max_steps = 2
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  records = metrics.read(workdir)
  assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
  evals = [r for r in records if r["kind"] == "eval"]
  assert evals and np.isfinite(evals[-1]["mlm_loss"]) and evals[-1]["tokens"] > 0
  data = config_lib.resolve(config).data
  built = store.cached(data, config.model.vocab_size)
  assert built is not None and built.manifest["sources"][0]["files"] == 3
  values = [t for text in texts for t in text if t]
  assert sum(k["documents"] for k in built.manifest["counts"].values()) == len(values) == 354
  assert built.manifest["settings"]["sources"][0]["spec"] == config.data.sources
  # A changed file is another store, as for text and jsonl files.
  _write_parquet(tmp_path / "pq" / "part-2.parquet", {"text": texts[2][:-1]})
  assert store.cached(data, config.model.vocab_size) is None
