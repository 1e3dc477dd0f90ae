"""Fine-tuning: tasks from every source, the heads on a real tiny checkpoint, baselines, GLUE."""

import json
import os
import shutil
import sys
import time

import jax
import numpy as np
import optax
import pytest

from conftest import ROOT, run_py
from jaxbert import checkpoint, data, optim
from jaxbert import workdir as workdir_lib
from jaxbert.config import ConfigError
from jaxbert.data import labelled as tasks
from jaxbert.data.labelled import glue
from jaxbert.model import Encoder, ModelConfig
from jaxbert.pretrain import loop, points, state
from jaxbert.tasks import baselines, classifier, compare, curve, finetune, tables
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, cache_dir):
  del cache_dir  # requested so the token store goes to the session cache
  path = str(tmp_path_factory.mktemp("finetune") / "run")
  loop.train_and_evaluate(tiny.get_config(), path)
  return path


def _write(path, lines):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))


WORDS = "the cat sat on a mat while rain fell over quiet old town".split()


def _sentence(i, n=5):
  return " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(n))


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
  """Six train rows and four dev rows per task, in the layout and columns of the real files
  (MRPC's start with a byte-order mark)."""
  d = str(tmp_path_factory.mktemp("glue_data"))
  train, dev = range(6), range(6, 10)
  for split, rows in (("train", train), ("dev", dev)):
    _write(f"{d}/CoLA/{split}.tsv", [f"gj04\t{i % 2}\t\t{_sentence(i)}" for i in rows])
    _write(f"{d}/SST-2/{split}.tsv", ["sentence\tlabel"] +
           [f"{_sentence(i)} \"quoted\t{i % 2}" for i in rows])  # a lone quote: QUOTE_NONE
    _write(f"{d}/MRPC/{split}.tsv", ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"] +
           [f"{i % 2}\t{i}\t{i + 100}\t{_sentence(i)}\t{_sentence(i + 1)}" for i in rows])
    _write(f"{d}/STS-B/{split}.tsv",
           ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
            "\tscore"] +
           [f"{i}\tnews\tf\t2012\t{i}\ts\ts\t{_sentence(i)}\t{_sentence(i + 2)}\t{i * 0.45:.3f}"
            for i in rows])
    _write(f"{d}/QQP/{split}.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"] +
           [f"{i}\t{i}\t{i + 1}\t{_sentence(i)}?\t{_sentence(i + 3)}?\t{i % 2}" for i in rows] +
           ["999\tbroken row"])  # QQP's real files hold a few of these
    _write(f"{d}/QNLI/{split}.tsv", ["index\tquestion\tsentence\tlabel"] +
           [f"{i}\t{_sentence(i)}?\t{_sentence(i + 4)}\t"
            f"{('entailment', 'not_entailment')[i % 2]}" for i in rows])
    _write(f"{d}/RTE/{split}.tsv", ["index\tsentence1\tsentence2\tlabel"] +
           [f"{i}\t{_sentence(i, 12)}\t{_sentence(i + 5)}\t"
            f"{('entailment', 'not_entailment')[i % 2]}" for i in rows])
  mnli_header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse"
                 "\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
  labels = ("entailment", "neutral", "contradiction")
  for name, rows in (("train", train), ("dev_matched", dev), ("dev_mismatched", range(10, 13))):
    _write(f"{d}/MNLI/{name}.tsv", [mnli_header] + [
        f"{i}\t{i}\t{i}n\tfiction\t(x)\t(y)\t(X)\t(Y)\t{_sentence(i)}\t{_sentence(i + 6)}\t"
        f"{labels[i % 3]}\t{labels[i % 3]}" for i in rows])
  _write(f"{d}/WNLI/train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\t1"])
  return d


def _quick_cfg(**overrides):
  cfg = compare.default_config()
  cfg.update({**dict(max_train_examples=48, epochs=1, min_steps=0, seeds=1, max_len=32, lr=1e-3,
                     eval_batch_size=64, bow_steps=20, cnn_filters=8, cnn_embed=16),
              **overrides})
  return cfg


# -- tasks ---------------------------------------------------------------------------------------

def test_embedded_tasks_load_with_stable_disjoint_splits():
  (a,), (b,) = tasks.load("sentiment"), tasks.load("sentiment")
  assert a.classes == ("negative", "positive") and a.metrics == ("accuracy",)
  assert a.train.text_a == b.train.text_a and (a.train.labels == b.train.labels).all()
  assert (len(a.train), len(a.dev["dev"])) == (8447, 2121)
  (spam,) = tasks.load("spam")
  assert spam.classes == ("ham", "spam") and spam.metrics == ("accuracy", "f1")
  assert (len(spam.train), len(spam.dev["dev"])) == (4604, 1237)
  for task in (a, spam):
    for split in (task.train, task.dev["dev"]):
      assert set(split.labels) == {0, 1} and split.text_b is None
      assert all(isinstance(t, str) and t for t in split.text_a)
  assert 0.25 < spam.train.labels.mean() < 0.35  # a third of the messages are spam
  # The sentiment source repeats 2 texts under different ids; spam was deduplicated.
  assert len(set(a.train.text_a) & set(a.dev["dev"].text_a)) <= 2
  assert not set(spam.train.text_a) & set(spam.dev["dev"].text_a)


def test_unknown_task_is_named():
  with pytest.raises(ConfigError, match="'nope'"):
    tasks.load("nope")


def test_glue_directory_reads_every_task_but_wnli(glue_dir):
  loaded = {t.name: t for t in tasks.load(f"glue:{glue_dir}")}
  assert list(loaded) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
  for name, task in loaded.items():
    assert len(task.train) == 6, name
  assert not loaded["cola"].pair and loaded["cola"].train.text_a[0] == _sentence(0)
  assert loaded["sst2"].train.text_a[1] == _sentence(1) + ' "quoted'
  assert loaded["mrpc"].train.text_b[2] == _sentence(3)
  assert loaded["stsb"].regression and loaded["stsb"].num_outputs == 1
  np.testing.assert_allclose(loaded["stsb"].train.labels, np.arange(6) * 0.45, atol=1e-6)
  assert len(loaded["qqp"].dev["dev"]) == 4  # the broken row is skipped
  mnli = loaded["mnli"]
  assert list(mnli.dev) == ["matched", "mismatched"] and len(mnli.dev["mismatched"]) == 3
  assert list(mnli.train.labels) == [0, 1, 2, 0, 1, 2]
  assert mnli.headline == ("accuracy (matched)", "accuracy (mismatched)")
  assert loaded["qnli"].train.labels[1] == 1 and loaded["rte"].classes == glue.ENTAILMENT
  picked = tasks.load(f"glue:{glue_dir}:RTE,sts-b")
  assert [t.name for t in picked] == ["stsb", "rte"]


def test_missing_glue_file_is_named(glue_dir, tmp_path):
  broken = tmp_path / "glue"
  os.makedirs(broken / "MRPC")
  for name in ("train.tsv", "dev.tsv"):
    (broken / "MRPC" / name).write_text(open(f"{glue_dir}/MRPC/{name}").read())
  os.remove(broken / "MRPC" / "dev.tsv")
  with pytest.raises(FileNotFoundError, match=r"MRPC/dev\.tsv is missing"):
    tasks.load(f"glue:{broken}")
  with pytest.raises(FileNotFoundError, match="SST-2/train.tsv"):
    tasks.load(f"glue:{broken}:sst2")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    tasks.load(f"glue:{tmp_path}/nowhere")


def test_tfds_glue_not_prepared_fails_fast_with_a_way_out(tmp_path):
  cfg = compare.default_config()
  cfg.tfds_data_dir = str(tmp_path)
  start = time.time()
  with pytest.raises(FileNotFoundError) as error:
    tasks.load("tfds:glue/sst2", cfg)
  assert time.time() - start < 5
  assert "tfds build glue/sst2" in str(error.value) and "glue:DIR" in str(error.value)


def test_tfds_glue_prepared_is_read(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")

  class Glue(tfds.core.GeneratorBasedBuilder):  # stands in for TFDS's GLUE: same names, features
    VERSION = tfds.core.Version("2.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="sst2"), tfds.core.BuilderConfig(name="stsb")]

    def _info(self):
      text = tfds.features.Text()
      features = ({"sentence1": text, "sentence2": text, "label": np.float32, "idx": np.int32}
                  if self.builder_config.name == "stsb" else
                  {"sentence": text, "idx": np.int32,
                   "label": tfds.features.ClassLabel(names=["negative", "positive"])})
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(6), "validation": self._generate_examples(4)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, ({"sentence1": f"first {i}", "sentence2": f"second {i}", "label": i / 2,
                   "idx": i} if self.builder_config.name == "stsb" else
                  {"sentence": f"text {i}", "label": i % 2, "idx": i})

  for name in ("sst2", "stsb"):
    Glue(config=name, data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  cfg = compare.default_config()
  cfg.tfds_data_dir = str(tmp_path)
  sst2, stsb = tasks.load("tfds:glue/stsb,glue/sst2", cfg)  # GLUE's order, not the spec's
  assert sst2.name == "sst2" and not sst2.pair and len(sst2.dev["dev"]) == 4
  assert sorted(zip(sst2.train.text_a, sst2.train.labels)) == [
      (f"text {i}", i % 2) for i in range(6)]
  assert stsb.regression and stsb.pair and stsb.train.labels.dtype == np.float32
  assert sorted(zip(stsb.train.text_a, stsb.train.text_b, stsb.train.labels)) == [
      (f"first {i}", f"second {i}", i / 2) for i in range(6)]


def test_user_files_csv_tsv_jsonl(tmp_path):
  cfg = compare.default_config()
  csv_path = tmp_path / "reviews.csv"
  csv_path.write_text("id,text,label\n" + "".join(
      f'{i},"{_sentence(i)}, said ""me""",{("neg", "pos")[i % 2]}\n' for i in range(10)))
  (task,) = tasks.load(f"file:{csv_path}", cfg)
  assert task.classes == ("neg", "pos") and task.metrics == ("accuracy", "f1")
  assert (len(task.train), len(task.dev["dev"])) == (8, 2)  # dev_fraction 0.2, fixed
  assert set(task.train.text_a) | set(task.dev["dev"].text_a) == {
      f'{_sentence(i)}, said "me"' for i in range(10)}

  cfg.update(dict(text_column="s1", text_b_column="s2", label_column="score"))
  train, dev = tmp_path / "sts_train.tsv", tmp_path / "sts_dev.tsv"
  for path, rows in ((train, range(6)), (dev, range(6, 9))):
    path.write_text("s1\ts2\tscore\n" + "".join(
        f'{_sentence(i)} "\t{_sentence(i + 1)}\t{i / 2}\n' for i in rows))
  (task,) = tasks.load(f"file:{train},{dev}", cfg)
  assert task.regression and task.pair and task.metrics == ("pearson", "spearman")
  assert task.dev["dev"].text_b[0] == _sentence(7)
  np.testing.assert_allclose(task.dev["dev"].labels, [3.0, 3.5, 4.0])

  cfg.update(dict(text_column="body", text_b_column="", label_column="y"))
  jsonl = tmp_path / "topics.jsonl"
  jsonl.write_text("".join(json.dumps({"body": _sentence(i), "y": i % 3}) + "\n"
                           for i in range(9)))
  (task,) = tasks.load(f"file:{jsonl}", cfg)
  assert task.classes == ("0", "1", "2") and task.metrics == ("accuracy",)


def _merged_files(tmp_path) -> str:
  """shop.csv (good/bad) with a dev file, film.csv (good/meh) without: the merged spec."""
  _write(f"{tmp_path}/shop.csv", ["text,label"] + [f"{_sentence(i)},{('bad', 'good')[i % 2]}"
                                                    for i in range(10)])
  _write(f"{tmp_path}/shop_dev.csv", ["text,label", "the cat sat,good", "a mat,bad"])
  _write(f"{tmp_path}/film.csv", ["text,label"] + [f"{_sentence(i, 7)},{('good', 'meh')[i % 2]}"
                                                    for i in range(8)])
  return f"file:{tmp_path}/shop.csv,{tmp_path}/shop_dev.csv+file:{tmp_path}/film.csv"


def test_merged_files_unite_train_sets_match_labels_by_name_and_score_each_part(tmp_path):
  (task,) = tasks.load(_merged_files(tmp_path))
  assert task.name == "shop+film" and task.classes == ("bad", "good", "meh")
  assert len(task.train) == 10 + 8 - 2  # film.csv holds out its 20% (2 rows) as its dev
  assert list(task.dev) == ["shop", "film", "all"] and len(task.dev["all"]) == 2 + 2
  # "good" is class 1 of shop.csv and class 0 of film.csv: one id in the merged task.
  shop_good = [i for i, t in enumerate(task.train.text_a) if t == _sentence(1)]
  film_good = [i for i, t in enumerate(task.train.text_a) if t == _sentence(0, 7)]
  assert task.train.labels[shop_good + film_good].tolist() == [1, 1]
  assert task.dev["shop"].labels.tolist() == [1, 0]
  assert task.metrics == ("accuracy",) and task.headline == ("accuracy (all)",)
  assert task.columns() == ["accuracy (shop)", "accuracy (film)", "accuracy (all)"]


def test_a_merged_task_fine_tunes_scores_each_part_and_keeps_its_classifier(workdir, tmp_path):
  cfg = _quick_cfg(task=_merged_files(tmp_path), baselines=False, batch_size=8)
  result = compare.run(workdir, cfg)
  assert [r["metric"] for r in result["rows"]] == [
      "accuracy (shop)", "accuracy (film)", "accuracy (all)"]
  meta = json.load(open(os.path.join(result["classifiers"]["shop+film"], "classifier.json")))
  assert meta["labels"] == ["bad", "good", "meh"] and set(meta["dev"]) == {
      "accuracy (shop)", "accuracy (film)", "accuracy (all)"}
  assert meta["kept"].startswith("seed 0: its dev accuracy (all) is the median of 1")


def test_merged_parts_must_agree(tmp_path):
  _merged_files(tmp_path)
  _write(f"{tmp_path}/scores.csv", ["text,label", "a,0.5", "b,1.5", "c,2.5"])
  with pytest.raises(ConfigError, match="must all be classification or all regression"):
    tasks.load(f"file:{tmp_path}/shop.csv+file:{tmp_path}/scores.csv")


def test_bad_user_rows_name_the_file_and_line(tmp_path):
  cfg = compare.default_config()
  path = tmp_path / "data.csv"
  path.write_text("text,label\nfine,1\nalso fine,0\n,1\n")
  with pytest.raises(ConfigError, match=r"data\.csv:4: the 'text' column is missing or empty"):
    tasks.load(f"file:{path}", cfg)
  path.write_text("text,label\nfine,1\nno label here,\n")
  with pytest.raises(ConfigError, match=r"data\.csv:3: the 'label' column"):
    tasks.load(f"file:{path}", cfg)
  jsonl = tmp_path / "data.jsonl"
  jsonl.write_text('{"text": "a", "label": 1}\n\n{"text": "b"}\n')
  with pytest.raises(ConfigError, match=r"data\.jsonl:3: the 'label' column"):
    tasks.load(f"file:{jsonl}", cfg)
  cfg.label_column = "gold"
  with pytest.raises(ConfigError, match="no column 'gold' .finetune.label_column"):
    tasks.load(f"file:{path}", cfg)
  with pytest.raises(FileNotFoundError, match="missing.tsv"):
    tasks.load(f"file:{tmp_path}/missing.tsv", cfg)


# -- scores, aggregation, baselines --------------------------------------------------------------

def test_median_is_taken_per_column_over_seeds():
  medians, lists = tables.aggregate([{"f1": 0.1, "accuracy": 0.9}, {"f1": 0.7, "accuracy": 0.2},
                                       {"f1": 0.4, "accuracy": 0.5}])
  assert medians == {"f1": 0.4, "accuracy": 0.5} and lists["f1"] == [0.1, 0.7, 0.4]
  assert tables.aggregate([{"a": 1.0}, {"a": 4.0}])[0] == {"a": 2.5}  # even: mean of the middle


def test_glue_average_counts_mnli_twice_and_one_number_per_task():
  rows = [dict(task=t, metric=m, in_average=avg, **{k: v for k in tables.MODELS})
          for t, m, avg, v in [("mnli", "accuracy (matched)", True, 0.8),
                               ("mnli", "accuracy (mismatched)", True, 0.7),
                               ("mrpc", "f1", True, 0.9), ("mrpc", "accuracy", False, 0.0),
                               ("cola", "matthews", True, 0.2)]]
  assert tables.glue_average(rows)["pretrained"] == pytest.approx((0.8 + 0.7 + 0.9 + 0.2) / 4)


def _toy_task(regression=False):
  """Texts whose label is whether they contain 'great' (or a score that says so)."""
  text = [f"{'great' if i % 2 else 'awful'} {WORDS[i % 13]} film item{i}" for i in range(40)]
  y = np.array([i % 2 for i in range(40)], np.float32 if regression else np.int32)
  split = tasks.Split(tuple(text), None, y)
  dev = tasks.Split(("great film", "awful movie", "truly great", "dull awful"), None,
                    np.array([1, 0, 1, 0], y.dtype))
  return tasks.Task("toy", split, {"dev": dev}, None if regression else ("no", "yes"),
                    ("pearson",) if regression else ("accuracy",))


def test_bag_of_words_learns_a_separable_toy_problem():
  cfg = compare.default_config()
  task = _toy_task()
  assert tables.score(task, baselines.bag_of_words(task, task.train, cfg))["accuracy"] == 1.0
  task = _toy_task(regression=True)
  predicted = baselines.bag_of_words(task, task.train, cfg)["dev"]
  assert predicted[0] > 0.5 > predicted[1]


def test_cnn_learns_which_token_decides_the_label():
  rng = np.random.default_rng(0)
  tokens = rng.integers(10, 60, (64, 12)).astype(np.int32)
  labels = rng.integers(0, 2, 64).astype(np.int32)
  tokens[labels == 1, rng.integers(1, 11, int(labels.sum()))] = 7  # the deciding token
  mask = np.ones_like(tokens)
  mask[:, 11] = 0  # a padded position
  cfg = _quick_cfg(epochs=15, batch_size=16, cnn_lr=1e-2)
  cnn = baselines.TextCNN(64, 16, 8, 2, 0.0)
  steps = finetune.trainer(cnn, cfg, 64, lr=cfg.cnn_lr)
  outputs, _ = finetune.finetune(cnn, steps, None, (tokens, mask, labels),
                                 {"dev": (tokens, mask)}, cfg, 0)
  assert (finetune.labels(outputs["dev"]) == labels).mean() == 1.0


# -- the encoder heads on a real checkpoint ------------------------------------------------------

def test_encode_single_and_pairs(workdir):
  config, _, _ = _pretrained(workdir)
  tok = data.prepare(config.data, config.model.vocab_size).tokenizer()
  tokens, mask, _ = classifier.encode(tok, ["the end", "word " * 100], 8)
  assert tokens[0, 0] == data.CLS_ID and data.SEP_ID in tokens[0]
  n = int(mask[0].sum())
  assert tokens[0, n - 1] == data.SEP_ID and (tokens[0, n:] == data.PAD_ID).all()
  assert mask[1].all() and tokens[1, -1] == data.SEP_ID  # truncated, still ends with [SEP]

  a, b = ["the end", "word " * 100, "x " * 3], ["a story", "y", "z " * 100]
  tokens, mask, _ = classifier.encode(tok, a, 16, b)
  ids = lambda s: tok.encode(s, add_special_tokens=False).ids
  assert list(tokens[0, :int(mask[0].sum())]) == [
      data.CLS_ID, *ids("the end"), data.SEP_ID, *ids("a story"), data.SEP_ID]
  for row, m in zip(tokens[1:], mask[1:]):  # long pairs: both sides keep tokens, two [SEP]s
    assert m.all() and list(row).count(data.SEP_ID) == 2 and row[-1] == data.SEP_ID
  # the long side is cut, the short side kept whole
  assert list(tokens[1, -3:]) == [data.SEP_ID, *ids("y"), data.SEP_ID]
  assert list(tokens[2, 1:1 + len(ids("x " * 3))]) == ids("x " * 3)
  # the count of cut examples: single texts, and pairs where either side lost tokens
  assert classifier.encode(tok, ["the end", "word " * 100], 8)[2] == 1
  assert classifier.encode(tok, a, 16, b)[2] == 2
  exact = ids("the end")
  assert classifier.encode(tok, ["the end"], len(exact) + 2)[2] == 0
  assert classifier.encode(tok, ["the end"], len(exact) + 1)[2] == 1


def test_truncation_keeps_both_sides():
  assert classifier._truncate(3, 4, 10) == (3, 4)
  assert classifier._truncate(50, 2, 10) == (8, 2)
  assert classifier._truncate(2, 50, 10) == (2, 8)
  assert classifier._truncate(50, 40, 11) == (6, 5)


def _pretrained(workdir):
  """(config, encoder params, step) of the workdir's latest checkpoint."""
  saved = workdir_lib.pretrained(workdir)
  return saved.config, saved.params["encoder"], saved.step


def test_encoder_params_come_from_the_checkpoint(workdir):
  config, encoder, step = _pretrained(workdir)
  assert step == 3
  _, _, init = state.build(config)
  fresh = init(state.init_key(config)).params["encoder"]
  restored, _ = checkpoint.Checkpoints(workdir).restore(
      None, jax.eval_shape(init, state.init_key(config)))
  leaf = lambda p: np.asarray(p["layer_0"]["attention"]["query"]["kernel"])
  np.testing.assert_array_equal(leaf(encoder), leaf(restored.params["encoder"]))
  assert not np.array_equal(leaf(encoder), leaf(fresh))  # three steps moved it from init


@pytest.mark.slow
def test_fine_tuning_evaluation_and_export_read_params_without_an_optimizer(workdir, tmp_path,
                                                                         monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError("a reader of the checkpoint built the pretraining optimizer")

  monkeypatch.setattr(optim, "make", refuse)
  monkeypatch.setattr(state, "build", refuse)
  from jaxbert import hf

  workdir = shutil.copytree(workdir, tmp_path / "copy")  # the others read the shared one's log
  assert points.checkpoint(workdir)["heldout_rows"] > 0
  hf.export(workdir, str(tmp_path / "export"))
  result = compare.run(workdir, _quick_cfg(task="spam", max_train_examples=6, batch_size=2,
                                           baselines=False))
  assert result["checkpoint_step"] == 3


@pytest.mark.slow
def test_classification_and_regression_heads_on_the_original_arch():
  # The crammed arch's heads run on the real checkpoint in the GLUE test below.
  model_config = ModelConfig(arch="original", vocab_size=64, num_layers=1, hidden_size=16,
                                      num_heads=2, ffn_size=32, max_len=12, dropout=0.1)
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, 64, (6, 12)).astype(np.int32)
  mask = np.ones_like(tokens)
  cfg = _quick_cfg(batch_size=2)  # 6 examples, batch 2, 1 epoch: 3 steps
  for outputs, labels in ((3, np.array([0, 1, 2, 0, 1, 2], np.int32)),
                          (1, np.linspace(0, 5, 6).astype(np.float32))):
    model = classifier.Classifier(model_config, outputs)
    steps = finetune.trainer(model, cfg, 6, regression=outputs == 1)
    assert steps[1] * cfg.epochs == 3
    out, params = finetune.finetune(model, steps, None, (tokens, mask, labels),
                                    {"dev": (tokens, mask)}, cfg, 0)
    assert out["dev"].shape == ((6,) if outputs == 1 else (6, 3))
    assert np.isfinite(out["dev"]).all() and out["dev"].dtype == np.float32
    # BERT's pooler on [CLS], then the head: BertForSequenceClassification's layout.
    assert params["pooler"]["kernel"].shape == (16, 16)
    assert finetune.labels(out["dev"]).shape == (6,)


def test_finetune_is_deterministic_per_seed(workdir):
  config, encoder, _ = _pretrained(workdir)
  cfg = _quick_cfg(max_train_examples=32)
  model = classifier.Classifier(
      ModelConfig.from_dict({**config.model.to_dict(), "dropout": 0.1}), 2)
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, config.model.vocab_size, (32, 32)).astype(np.int32)
  examples = (tokens, np.ones_like(tokens), (tokens[:, 1] % 2).astype(np.int32))
  steps = finetune.trainer(model, cfg, 32)
  runs = [finetune.finetune(model, steps, encoder, examples, {"dev": examples[:2]}, cfg, 0)
          for _ in range(2)]
  np.testing.assert_array_equal(runs[0][0]["dev"], runs[1][0]["dev"])
  jax.tree.map(np.testing.assert_array_equal, runs[0][1], runs[1][1])


def test_three_step_finetune_on_embedded_task_records(workdir, capsys):
  # 6 examples in batches of 2, as in the GLUE test below: the compiled steps are shared.
  result = compare.run(workdir, _quick_cfg(task="spam", max_train_examples=6, batch_size=2))
  assert ("spam: 6 of 6 training examples (100%) are longer than finetune.max_len=32 tokens"
          in capsys.readouterr().out)
  assert result["checkpoint_step"] == 3 and [r["metric"] for r in result["rows"]] == [
      "accuracy", "f1"]
  for row in result["rows"]:
    for key in tables.MODELS:
      assert 0.0 <= row[key] <= 1.0
    assert len(row["pretrained_seeds"]) == len(row["cnn_seeds"]) == 1
    assert row["train_examples_cut"] == 6  # whole e-mails do not fit in 32 tokens
  records = [r for r in metrics.read(workdir) if r["kind"] == "finetune"][-2:]
  assert [r["metric"] for r in records] == ["accuracy", "f1"]
  assert records[0]["step"] == 3 and records[0]["pretrained"] == result["rows"][0]["pretrained"]
  with open(os.path.join(workdir, "finetune.json")) as f:
    assert json.load(f)["config"]["max_train_examples"] == 6


def test_pretrained_only_when_baselines_are_off(workdir, capsys):
  result = compare.run(workdir, _quick_cfg(task="spam", max_train_examples=6, batch_size=2,
                                            baselines=False))
  assert [set(tables.MODELS) & set(r) for r in result["rows"]] == [{"pretrained"}] * 2
  header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| task")]
  assert header[-1] == "| task | metric | pretrained |"


@pytest.mark.slow
def test_mean_pooling_averages_the_unpadded_outputs(workdir):
  config, encoder, _ = _pretrained(workdir)
  model_config = ModelConfig.from_dict(config.model)
  model = classifier.Classifier(model_config, 2, pooling="mean")
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, config.model.vocab_size, (2, 12)).astype(np.int32)
  mask = np.ones_like(tokens)
  mask[1, 7:] = 0
  padded = np.where(mask == 1, tokens, data.PAD_ID)
  params = model.init(jax.random.key(0), padded, mask)["params"]
  params = {**params, "encoder": encoder}
  logits = np.asarray(model.apply({"params": params}, padded, mask))
  out = np.asarray(Encoder(model_config).apply({"params": encoder}, padded,
                                                         attention_mask=mask))
  pooled = np.stack([out[0].mean(0), out[1, :7].mean(0)])
  expected = pooled @ np.asarray(params["head"]["kernel"]) + np.asarray(params["head"]["bias"])
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
  # The second example alone, without padding, gives the same logits.
  alone = np.asarray(model.apply({"params": params}, padded[1:, :7], mask[1:, :7]))
  np.testing.assert_allclose(alone[0], logits[1], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_glue_protocol_runs_single_pair_and_regression_tasks(workdir, glue_dir):
  # 6 train rows, batch 2, 1 epoch: 3 steps per fine-tune; 2 seeds to exercise the median.
  cfg = _quick_cfg(task=f"glue:{glue_dir}:sst2,mrpc,stsb", batch_size=2, seeds=2,
                   max_train_examples=0)
  result = compare.glue(workdir, cfg)
  got = [(r["task"], r["metric"]) for r in result["rows"]]
  assert got == [("sst2", "accuracy"), ("mrpc", "f1"), ("mrpc", "accuracy"),
                 ("stsb", "pearson"), ("stsb", "spearman")]
  for row in result["rows"]:
    assert len(row["pretrained_seeds"]) == 2
    assert row["pretrained"] == pytest.approx(np.median(row["pretrained_seeds"]))
    assert row["train_examples"] == 6 and row["dev_examples"] == 4
    assert row["train_examples_cut"] == 0
  headline = [r["pretrained"] for r in result["rows"] if r["in_average"]]
  assert len(headline) == 3 and not result["complete"]
  assert result["average"]["pretrained"] == pytest.approx(np.mean(headline))
  with open(os.path.join(workdir, "finetune", "glue.json")) as f:
    assert json.load(f)["rows"] == result["rows"]
  md = open(os.path.join(workdir, "finetune", "glue.md")).read()
  assert "| stsb | spearman |" in md and "not a GLUE score" in md


def test_bad_settings_are_refused(workdir):
  with pytest.raises(ConfigError, match="max_len"):
    compare.run(workdir, _quick_cfg(max_len=64))  # tiny's model.max_len is 32
  with pytest.raises(ConfigError, match="finetune.pooling='max'"):
    compare.run(workdir, _quick_cfg(pooling="max"))
  with pytest.raises(KeyError):
    compare.run(workdir, _quick_cfg(learning_rate=1e-3))
  with pytest.raises(ConfigError, match="--mode=glue runs GLUE tasks"):
    compare.glue(workdir, _quick_cfg())


def test_cli_reports_a_missing_glue_directory(workdir, tmp_path):
  proc = run_py("--mode=glue", f"--workdir={workdir}", "--config=configs/tiny.py",
                f"--config.finetune.task=glue:{tmp_path}/absent", check=False, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: GLUE directory {tmp_path}/absent does not exist")


@pytest.mark.slow
def test_training_ends_with_the_table_once_per_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  args = ["--config=configs/tiny.py", "--config.finetune.after_training=true",
          f"--workdir={workdir}"]
  first = run_py(*args).stdout
  assert "fine-tuned checkpoint step 3 on sentiment" in first
  assert "no pretraining" in first and "bag of words" in first.lower()
  table = first[first.index("fine-tuned checkpoint step 3"):first.index("report:", first.index(
      "fine-tuned checkpoint step 3"))]
  lines = len([r for r in metrics.read(workdir) if r["kind"] == "finetune"])
  assert lines > 0
  # Then where the classifier is, the command that uses it, and two answers on unseen texts.
  use = first[first.index("classifier: "):]
  assert use.startswith(f"classifier: {workdir}/classifiers/sentiment\n  python run.py "
                        f"--mode=predict --workdir={workdir} --input=-")
  assert "'A tender, funny film that earns every minute of its ending.' -> " in use
  again = run_py(*args).stdout  # a finished run: the same table again, nothing redone
  assert table in again and use in again
  assert len([r for r in metrics.read(workdir) if r["kind"] == "finetune"]) == lines
  assert "Fine-tuning" in open(os.path.join(workdir, "report.md")).read()


# -- the label-budget curve and layer-wise learning-rate decay ---------------------------------

def test_curve_subsets_are_nested_class_stratified_and_fixed():
  labels = np.array([0] * 300 + [1] * 100 + [2] * 40, np.int32)
  order = curve.label_order(labels, regression=False)
  assert sorted(order.tolist()) == list(range(len(labels)))  # a permutation of the split
  np.testing.assert_array_equal(order, curve.label_order(labels, regression=False))
  for n in (11, 44, 100, 250):
    counts = np.bincount(labels[order[:n]], minlength=3)
    assert (np.abs(counts - n * np.array([300, 100, 40]) / 440) <= 1.5).all(), (n, counts)
  # Prefixes are the subsets, so each size holds every smaller one.
  assert set(order[:44]) <= set(order[:100]) <= set(order[:250])


def test_train_sizes_and_the_minimum_step_rule():
  cfg = _quick_cfg(train_sizes="300, 100,0,100000")
  assert curve.train_sizes(cfg, 1000) == [100, 300, 1000]  # 0 and too large: all, once
  assert curve.train_sizes(_quick_cfg(train_sizes="", max_train_examples=48), 1000) == [48]
  with pytest.raises(ConfigError, match=r"finetune.train_sizes='100,ten'"):
    curve.train_sizes(_quick_cfg(train_sizes="100,ten"), 1000)
  with pytest.raises(ConfigError, match="--mode=glue scores one training set"):
    compare.glue("unused", _quick_cfg(train_sizes="10,0"))
  # 100 examples in batches of 16 make 6 steps an epoch: 50 epochs reach 300 steps.
  assert finetune.epochs_for(_quick_cfg(epochs=3, min_steps=300, batch_size=16), 100) == 50
  assert finetune.epochs_for(_quick_cfg(epochs=3, min_steps=300, batch_size=16), 8447) == 3
  assert finetune.epochs_for(_quick_cfg(epochs=2, min_steps=0, batch_size=16), 10) == 2


@pytest.mark.slow
def test_label_budget_curve_rows_table_json_and_plot(workdir, capsys):
  workdir = shutil.copytree(workdir, os.path.join(os.path.dirname(workdir), "curve"))
  # Batch 2 and at least 6 steps: 6 examples get 2 epochs, 12 examples the 1 of finetune.epochs.
  result = compare.run(workdir, _quick_cfg(task="spam", train_sizes="12,6", batch_size=2,
                                           min_steps=6, name="spam-curve"))
  rows = result["rows"]
  assert [(r["train_examples"], r["metric"], r["epochs"]) for r in rows] == [
      (6, "accuracy", 2), (6, "f1", 2), (12, "accuracy", 1), (12, "f1", 1)]
  points = result["curve"]["spam"]
  assert [p["train_examples"] for p in points] == [6, 12]
  for p, r in zip(points, rows[::2]):
    assert p["pretrained"] == r["pretrained"] and p["metric"] == "accuracy"
    assert p["gain"] == pytest.approx(
        r["pretrained"] - max(r["no_pretraining"], r["cnn"], r["bag_of_words"]))
  out = capsys.readouterr().out
  assert "label-budget curve (median of 1 seed(s)" in out
  assert "| spam | 6 | accuracy | " in out and "| spam | 12 | accuracy | " in out
  assert "spam (6 labels, 2 epochs) seed 0 pretrained" in out
  with open(os.path.join(workdir, "label_curve.json")) as f:
    assert json.load(f)["curve"]["spam"] == points
  with open(os.path.join(workdir, "label_curve.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  # The table and the saved classifier are those of the largest size.
  assert "| spam | accuracy |" in result["table"] and result["table"].count("| spam |") == 2
  with open(os.path.join(result["classifiers"]["spam"], "classifier.json")) as f:
    assert json.load(f)["dev"]["accuracy"] in rows[2]["pretrained_seeds"]


def test_layer_lr_decay_scales_each_layer_by_its_depth():
  updates = {"encoder": {"embeddings": {"word": {"embedding": np.ones(2)}},
                         **{f"layer_{i}": {"ffn": {"kernel": np.ones(2)}} for i in range(3)},
                         "final_norm": {"scale": np.ones(2)}},
             "head": {"kernel": np.ones(2)}}
  scaled, _ = finetune.layer_scale(0.5).update(updates, optax.EmptyState())
  factor = lambda tree: float(jax.tree.leaves(tree)[0][0])
  enc = scaled["encoder"]
  assert [factor(enc[f"layer_{i}"]) for i in range(3)] == [0.25, 0.5, 1.0]
  assert factor(enc["embeddings"]) == 0.125
  assert factor(enc["final_norm"]) == factor(scaled["head"]) == 1.0


@pytest.mark.slow
def test_layer_lr_decay_moves_the_lower_layers_less(workdir):
  config, encoder, _ = _pretrained(workdir)
  model = classifier.Classifier(ModelConfig.from_dict(config.model.to_dict()), 2)
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, config.model.vocab_size, (16, 32)).astype(np.int32)
  examples = (tokens, np.ones_like(tokens), (tokens[:, 1] % 2).astype(np.int32))

  def moved(decay):
    cfg = _quick_cfg(batch_size=4, epochs=2, layer_lr_decay=decay)
    _, params = finetune.finetune(model, finetune.trainer(model, cfg, 16), encoder, examples,
                                  {"dev": examples[:2]}, cfg, 0)
    return {name: float(optax.global_norm(jax.tree.map(
        lambda a, b: a - b, params["encoder"][name], encoder[name])))
        for name in ("embeddings", "layer_0")}
  full, decayed = moved(1.0), moved(0.1)
  # With decay 0.1 over 2 layers the embeddings step at 1% of the rate, layer 0 at 10%.
  assert decayed["embeddings"] < 0.05 * full["embeddings"]
  assert decayed["layer_0"] < 0.3 * full["layer_0"]


@pytest.mark.slow
def test_augmented_copies_train_every_model_of_the_table(workdir, capsys):
  workdir = shutil.copytree(workdir, os.path.join(os.path.dirname(workdir), "augmented"))
  result = compare.run(workdir, _quick_cfg(task="spam", max_train_examples=6, batch_size=2,
                                           augment="mlm", augment_copies=2, name="spam-mlm"))
  row = result["rows"][0]
  assert (row["train_examples"], row["examples"]) == (6, 18)  # 6 labels, 2 copies of each
  assert "spam (6 labels, 18 examples, 1 epochs) seed 0 cnn" in capsys.readouterr().out
  with pytest.raises(ConfigError, match="finetune.augment='synonyms' must be one of"):
    compare.run(workdir, _quick_cfg(task="spam", max_train_examples=6, augment="synonyms",
                                    name="spam-bad"))


@pytest.mark.slow
def test_reinit_layers_starts_the_top_layers_afresh():
  cfg = tiny.get_config().finetune
  mc = ModelConfig(vocab_size=64, num_layers=3, hidden_size=16, num_heads=2, ffn_size=32,
                   max_len=8)
  model = classifier.Classifier(mc, 2, "mean")
  tokens, mask = np.ones((1, 8), np.int32), np.ones((1, 8), np.int32)
  pretrained = Encoder(mc).init(jax.random.key(7), tokens)["params"]
  for reinit in (0, 2):
    cfg.reinit_layers = reinit
    init = finetune.trainer(model, cfg, 32)[2]
    params, _ = init(jax.random.key(0), tokens, mask, pretrained)
    for i in range(3):
      got, want = params["encoder"][f"layer_{i}"], pretrained[f"layer_{i}"]
      same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
      assert same == (i < 3 - reinit), (reinit, i)
    same = jax.tree.map(np.array_equal, params["encoder"]["embeddings"], pretrained["embeddings"])
    assert all(jax.tree.leaves(same))
