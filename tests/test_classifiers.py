"""Saved classifiers: fine-tuning keeps one; predict, embed and evaluate it; the Python API."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT, run_py
from jaxbert import Classifier, Encoder
from jaxbert.config import ConfigError
from jaxbert.inference import commands, inputs, loaded
from jaxbert.pretrain import loop
from jaxbert.tasks import compare, saved

import sys

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402

GOOD = "good fine lovely warm bright kind".split()
BAD = "bad dull grim cold dark cruel".split()


def _review(i: int, positive: bool, words: int = 4) -> str:
  pick = GOOD if positive else BAD
  return " ".join(["the", "film", "was"] + [pick[(i + k) % len(pick)] for k in range(words)])


def _write_csv(path, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["text", "label"])
    w.writerows(rows)
  return str(path)


def _settings(**overrides):
  cfg = compare.default_config()
  cfg.update({**dict(epochs=4, seeds=3, max_len=32, lr=2e-3, batch_size=8, eval_batch_size=64,
                     bow_steps=20, cnn_filters=8, cnn_embed=16, baselines=False,
                     pooling="mean"), **overrides})
  return cfg


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("labelled")
  train = [(_review(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(64)]
  # Dev rows the classifier never saw, two of them longer than max_len=32 tokens.
  dev = [(_review(i + 3, i % 3 == 0, words=5 if i > 1 else 60), "pos" if i % 3 == 0 else "neg")
         for i in range(21)]
  return dict(train=_write_csv(d / "reviews.csv", train),
              dev=_write_csv(d / "reviews_dev.csv", dev), dev_rows=dev)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, cache_dir, files):
  """A tiny pretrained run with one classifier, fine-tuned on reviews.csv over 3 seeds."""
  del cache_dir
  path = str(tmp_path_factory.mktemp("classifiers") / "run")
  loop.train_and_evaluate(tiny.get_config(), path)
  compare.run(path, _settings(task=f"file:{files['train']},{files['dev']}"))
  return path


def test_finetuning_saves_the_median_seed_that_predicts_what_it_scored(workdir, files):
  directory = saved.directory(workdir, "reviews")
  assert saved.names(workdir) == ["reviews"]
  meta = json.load(open(os.path.join(directory, "classifier.json")))
  assert meta["task"] == "reviews" and meta["labels"] == ["neg", "pos"]
  assert meta["max_len"] == 32 and meta["pooling"] == "mean" and meta["checkpoint_step"] == 3
  scored = json.load(open(os.path.join(workdir, "finetune.json")))["rows"][0]
  assert meta["dev"]["accuracy"] == pytest.approx(scored["pretrained"])  # the median seed, 3
  assert meta["dev"]["accuracy"] in scored["pretrained_seeds"]
  assert meta["kept"].startswith(f"seed {meta['seed']}: its dev accuracy is the median of 3")
  clf = Classifier.load(workdir)  # the only one: no name needed
  texts = [t for t, _ in files["dev_rows"]]
  probabilities = clf.probabilities(texts)
  np.testing.assert_allclose(probabilities, np.load(os.path.join(directory,
                                                                 "dev_outputs.npz"))["dev"],
                             rtol=0, atol=1e-6)
  assert clf.last_cut == 2
  truth = [clf.labels.index(label) for _, label in files["dev_rows"]]
  assert np.mean(np.argmax(probabilities, 1) == truth) == meta["dev"]["accuracy"]


def test_even_seeds_keep_the_lower_middle_one():
  task = type("T", (), {"headline": ("accuracy",), "columns": lambda self: ["accuracy"]})()
  scores = [{"accuracy": a} for a in (0.9, 0.6, 0.7, 0.8)]
  kept = compare._keep(task, scores, [({}, {"seed": s}) for s in range(4)], 0)
  assert kept.seed == 2 and kept.params == {"seed": 2} and "lower of the two middle" in kept.note


def test_commands_agree_with_the_saved_dev_score_and_the_api(workdir, files, tmp_path):
  meta = json.load(open(os.path.join(saved.directory(workdir, "reviews"), "classifier.json")))
  out = tmp_path / "predictions.jsonl"
  proc = run_py("--mode=predict", f"--workdir={workdir}", f"--input={files['dev']}",
                f"--output={out}")
  assert "2 of 21 texts were longer than the classifier's max_len=32" in proc.stderr
  answers = [json.loads(line) for line in open(out)]
  assert len(answers) == 21 and set(answers[0]["probabilities"]) == {"neg", "pos"}
  accuracy = np.mean([a["label"] == label for a, (_, label) in zip(answers, files["dev_rows"])])
  assert accuracy == meta["dev"]["accuracy"]
  api = Classifier.load(workdir, "reviews").predict([t for t, _ in files["dev_rows"]])
  assert [a["label"] for a in api] == [a["label"] for a in answers]

  proc = run_py("--mode=evaluate", f"--workdir={workdir}", "--classifier=reviews",
                f"--input={files['dev']}")
  assert f"21 rows, accuracy {meta['dev']['accuracy']:.4f}" in proc.stdout
  assert "| pos " in proc.stdout and "confusion" in proc.stdout
  report = json.load(open(os.path.join(saved.directory(workdir, "reviews"),
                                       "evaluation-reviews_dev.json")))
  assert report["metrics"]["accuracy"] == meta["dev"]["accuracy"]
  assert sum(map(sum, report["confusion"]["counts"])) == 21

  proc = run_py("--mode=embed", f"--workdir={workdir}", "--classifier=reviews",
                f"--input={files['dev']}", f"--output={tmp_path / 'x.npy'}")
  vectors = np.load(tmp_path / "x.npy")
  assert vectors.shape == (21, 32) and vectors.dtype == np.float32
  np.testing.assert_allclose(vectors, Classifier.load(workdir).embed(
      [t for t, _ in files["dev_rows"]]), rtol=0, atol=1e-6)


def test_order_is_kept_across_batches_lengths_and_stdin(workdir):
  clf = Classifier.load(workdir)
  # More texts than a batch, of every length bucket, shuffled: sorted internally, put back.
  rng = np.random.default_rng(0)
  texts = [_review(i, i % 2 == 0, words=int(rng.integers(1, 30))) for i in range(300)]
  together = clf.probabilities(texts)
  alone = np.concatenate([clf.probabilities([t]) for t in texts[:20]])
  np.testing.assert_allclose(together[:20], alone, rtol=0, atol=1e-6)
  proc = run_py("--mode=predict", f"--workdir={workdir}", "--input=-",
                stdin="".join(t + "\n" for t in texts))
  answers = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [a["label"] for a in answers] == [clf.labels[i] for i in together.argmax(1)]


def test_embeddings_of_a_pretrained_encoder(workdir):
  encoder = Encoder.load(workdir)
  texts = ["a quiet town", "rain fell on the old mat", ""]
  first = encoder.embed(texts)
  assert first.shape == (3, 32) and first.dtype == np.float32
  np.testing.assert_array_equal(first, encoder.embed(texts))
  np.testing.assert_allclose(encoder.embed(texts[1:2])[0], first[1], rtol=0, atol=1e-6)
  assert encoder.embed([]).shape == (0, 32)


def test_a_second_finetune_with_other_settings_is_refused(workdir, files):
  settings = _settings(task=f"file:{files['train']},{files['dev']}", seeds=1, epochs=1)
  with pytest.raises(ConfigError, match=r"finetune.epochs, finetune.seeds differ\); keep both "
                     r"with --config.finetune.name=OTHER_NAME"):
    compare.run(workdir, settings)
  settings.name = "quick_look"  # kept beside the first
  compare.run(workdir, settings)
  assert saved.names(workdir) == ["quick_look", "reviews"]
  settings.epochs, settings.overwrite = 2, True
  compare.run(workdir, settings)
  assert json.load(open(os.path.join(saved.directory(workdir, "quick_look"),
                                     "classifier.json")))["finetune"]["epochs"] == 2
  with pytest.raises(ConfigError, match=r"holds 2 classifiers \(quick_look, reviews\): name one"):
    Classifier.load(workdir)


def test_bad_inputs_get_one_line_each(workdir, tmp_path):
  def refused(*args, stdin=None):  # the command line: one line, exit status 1
    proc = run_py(*args, check=False, stdin=stdin)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]

  def error(fn, *args, **kwargs):  # the same refusals in this process (run.py prints "error: ")
    with pytest.raises((ConfigError, OSError)) as e:
      fn(*args, **kwargs)
    return str(e.value)

  bare = shutil.copytree(workdir, tmp_path / "bare", ignore=shutil.ignore_patterns("classifiers"))
  line = refused("--mode=predict", f"--workdir={bare}", "--input=-")
  assert line.startswith(f"error: {bare} holds no classifier (it holds checkpoints/, config.json")
  assert line.endswith(f"fine-tune one with python run.py --mode=finetune --workdir={bare}")
  assert error(commands.predict, workdir, "nope", "-", None) == (
      f"{workdir} has no classifier 'nope'; its classifiers: " + ", ".join(saved.names(workdir)))
  def predict(path, output=None, **kwargs):
    return commands.predict(workdir, "reviews", str(path), output, **kwargs)

  missing = tmp_path / "absent.txt"
  assert error(predict, missing) == f"{missing} does not exist"
  (tmp_path / "empty.txt").write_text("")
  assert error(predict, tmp_path / "empty.txt") == (
      f"{tmp_path / 'empty.txt'} is empty: it holds no texts")
  other = tmp_path / "other.csv"
  other.write_text("review,stars\ngreat,5\n")
  assert error(predict, other) == (
      f"{other} has no column 'text'; its columns are ['review', 'stars'] (the text "
      "column is the classifier's finetune.text_column unless --text_column names another)")
  unknown = tmp_path / "unknown.csv"
  unknown.write_text("text,label\ngreat,pos\nawful,meh\n")
  assert error(commands.evaluate, workdir, "reviews", str(unknown)) == (
      f"{unknown}:3: label 'meh' is not one of the classifier's labels ['neg', 'pos']")

  args = ["--mode=predict", f"--workdir={workdir}", "--classifier=reviews"]
  latin = tmp_path / "latin.txt"
  latin.write_bytes(b"fine\nok\ncaf\xe9 au lait\n")
  out = tmp_path / "out.jsonl"
  assert refused(*args, f"--input={latin}", f"--output={out}") == (
      f"error: {latin}:3: not UTF-8 text (byte 4 of the line); save the file as UTF-8")
  assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".out")]
  predict(other, text_column="review", output=str(out))
  assert error(predict, other, text_column="review", output=str(out)) == (
      f"{out} exists; remove it, choose another --output, or pass --overwrite")


def test_a_classifier_whose_workdir_changed_is_refused(workdir, tmp_path):
  moved = shutil.copytree(workdir, tmp_path / "changed")
  with open(moved / "tokenizer.json", "a") as f:
    f.write(" ")
  with pytest.raises(ConfigError, match="fine-tuned with another tokenizer than"):
    Classifier.load(str(moved), "reviews")
  # The directory itself still stands alone: its own tokenizer copy is checked.
  assert Classifier.load(str(moved / "classifiers" / "reviews")).labels == ["neg", "pos"]
  with open(moved / "classifiers" / "reviews" / "tokenizer.json", "a") as f:
    f.write(" ")
  with pytest.raises(ConfigError, match="is not the tokenizer"):
    Classifier.load(str(moved / "classifiers" / "reviews"))


def test_inputs_stream_every_format_with_line_numbers(tmp_path):
  (tmp_path / "a.tsv").write_text('text\tlabel\nsay "hi\tpos\n\nbye\tneg\n')
  rows = list(inputs.rows(str(tmp_path / "a.tsv"), label_column="label"))
  assert [(r.line, r.text_a, r.label) for r in rows] == [(2, 'say "hi', "pos"), (4, "bye", "neg")]
  (tmp_path / "a.csv").write_text('text\n"two\nlines"\nthree\n')
  assert [(r.line, r.text_a) for r in inputs.rows(str(tmp_path / "a.csv"))] == [
      (2, "two\nlines"), (4, "three")]
  (tmp_path / "a.jsonl").write_text('{"text": "x", "t2": "y"}\n\n{"text": "z"}\n')
  with pytest.raises(ConfigError, match=r"a.jsonl:3 has no key 't2'"):
    list(inputs.rows(str(tmp_path / "a.jsonl"), text_b_column="t2"))
  assert loaded.length_buckets(64) == [16, 32, 48, 64]
  assert loaded.length_buckets(300) == [16, 32, 48, 64, 80, 96, 112, 128, 192, 256, 300]
  assert [loaded.batch_rows(w) for w in (16, 32, 64, 128, 512)] == [256, 128, 64, 32, 8]
  assert commands.format_evaluation(dict(input="x", rows=1, metrics={"accuracy": 1.0},
                                         texts_cut=0)) == "x: 1 rows, accuracy 1.0000"


@pytest.mark.slow
def test_an_original_arch_classifier_exports_to_transformers(tmp_path, cache_dir, files,
                                                             workdir):
  import torch
  import transformers

  del cache_dir
  config = tiny.get_config()
  config.model.arch = "original"
  run = str(tmp_path / "original")
  loop.train_and_evaluate(config, run)
  compare.run(run, _settings(task=f"file:{files['train']},{files['dev']}", seeds=1,
                             pooling="first"))
  out = tmp_path / "hf"
  proc = run_py("--mode=export", f"--workdir={run}", "--classifier=reviews", f"--out={out}")
  assert "AutoModelForSequenceClassification" in proc.stdout
  model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  assert model.config.id2label == {0: "neg", 1: "pos"}
  texts = [t for t, _ in files["dev_rows"]]  # two longer than max_len: cut alike
  batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
  with torch.no_grad():
    theirs = model(**batch).logits.numpy()
  ours = Classifier.load(run).outputs(texts)
  np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)
  assert np.abs(ours).max() > 1e-3  # logits that could tell a wrong export from a right one
  # The crammed classifier (mean pooling) through the modeling code its export carries.
  from jaxbert import hf
  crammed = tmp_path / "crammed"
  assert "trust_remote_code=True" in hf.export_classifier(
      saved.directory(workdir, "reviews"), str(crammed))
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      crammed, trust_remote_code=True).eval()
  assert model.config.classifier_pooling == "mean" and model.config.id2label[1] == "pos"
  batch = transformers.AutoTokenizer.from_pretrained(crammed)(
      texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
  with torch.no_grad():
    theirs = model(**batch).logits.numpy()
  np.testing.assert_allclose(theirs, Classifier.load(workdir, "reviews").outputs(texts), rtol=0,
                             atol=1e-4)


def test_blank_texts_get_null_in_their_place_and_never_reach_the_model(workdir, tmp_path):
  clf = Classifier.load(workdir, "reviews")
  seen = []
  run_chunk = clf._runner._chunk
  clf._runner._chunk = lambda fn, a, b: (seen.extend(a), run_chunk(fn, a, b))[1]
  texts = ["the film was good", "", "  \t", None, "the film was dull"]
  answers = clf.predict(texts)
  assert seen == [texts[0], texts[4]] and clf.last_blank == 3
  assert answers[1:4] == [None, None, None]
  assert answers[0::4] == clf.predict([texts[0], texts[4]])
  assert np.isnan(clf.probabilities(texts)[1:4]).all()
  assert not np.isnan(clf.probabilities(texts)[0::4]).any()
  vectors = clf.embed(texts)
  assert vectors.shape == (5, 32) and np.isnan(vectors[1:4]).all()
  np.testing.assert_allclose(vectors[0::4], clf.embed([texts[0], texts[4]]), rtol=0, atol=1e-6)
  assert np.isnan(Encoder.load(workdir).embed(["", "a quiet town"])[0]).all()

  # The command line, from stdin: one line per input line, the blank ones null.
  proc = run_py("--mode=predict", f"--workdir={workdir}", "--classifier=reviews", "--input=-",
                stdin="the film was good\n\n   \nthe film was dull\n")
  lines = proc.stdout.splitlines()
  assert lines[1:3] == ["null", "null"] and len(lines) == 4
  assert [json.loads(lines[i]) for i in (0, 3)] == answers[0::4]
  assert "2 of 4 texts were blank: null in their place" in proc.stderr
  # An empty field of a .csv, an empty or null text in .jsonl; blank lines there are no rows.
  table = tmp_path / "texts.csv"
  table.write_text('text,id\nthe film was good,1\n,2\n\n"  ",3\nthe film was dull,4\n')
  records = tmp_path / "texts.jsonl"
  records.write_text('{"text": "the film was good"}\n{"text": ""}\n\n{"text": null}\n'
                     '{"text": "the film was dull"}\n')
  for path in (table, records):
    out = tmp_path / f"{path.suffix[1:]}.jsonl"
    run_py("--mode=predict", f"--workdir={workdir}", "--classifier=reviews", f"--input={path}",
           f"--output={out}")
    assert [json.loads(line) for line in open(out)] == [answers[0], None, None, answers[4]]
  # embed: a row of NaN, the others the API's.
  (tmp_path / "texts.txt").write_text("the film was good\n\nthe film was dull\n")
  run_py("--mode=embed", f"--workdir={workdir}", "--classifier=reviews",
         f"--input={tmp_path / 'texts.txt'}", f"--output={tmp_path / 'x.npy'}")
  saved_rows = np.load(tmp_path / "x.npy")
  assert saved_rows.shape == (3, 32) and np.isnan(saved_rows[1]).all()
  np.testing.assert_allclose(saved_rows[0::2], vectors[0::4], rtol=0, atol=1e-6)

  # Evaluation scores what it can: an empty row is left out, a labelled blank text refused.
  labelled = tmp_path / "labelled.csv"
  labelled.write_text("text,label\nthe film was good,pos\n,\n")
  assert commands.evaluate(workdir, "reviews", str(labelled))["rows"] == 1
  labelled.write_text("text,label\nthe film was good,pos\n,neg\n")
  with pytest.raises(ConfigError, match=r"labelled.csv:3: the text is blank but labelled 'neg'"):
    commands.evaluate(workdir, "reviews", str(labelled))


def test_an_output_in_a_missing_directory_is_refused_before_any_work(workdir, tmp_path):
  def refused(*args):  # exit status 1, and the last line ours: not an uncaught exception's
    proc = run_py(*args, check=False, stdin="the film was good\n")
    assert proc.returncode == 1
    return proc.stderr.strip().splitlines()[-1]

  missing = tmp_path / "missing"
  for mode, name in (("predict", "out.jsonl"), ("embed", "x.npy")):
    out = missing / name
    assert refused(f"--mode={mode}", f"--workdir={workdir}", "--classifier=reviews", "--input=-",
                   f"--output={out}") == (
        f"error: --output={out}: the directory {missing} does not exist; create it, or choose "
        "another --output")
  assert os.listdir(tmp_path) == []  # nothing left behind, and no directory made up
  # The other inputs a user gets wrong, on the command line too.
  assert refused("--mode=predict", f"--workdir={workdir}", "--classifier=nope", "--input=-") == (
      f"error: {workdir} has no classifier 'nope'; its classifiers: "
      + ", ".join(saved.names(workdir)))
  records = tmp_path / "reviews.jsonl"
  records.write_text('{"review": "great"}\n')
  assert refused("--mode=predict", f"--workdir={workdir}", "--classifier=reviews",
                 f"--input={records}") == (
      f"error: {records}:1 has no key 'text'; its keys are ['review']")
