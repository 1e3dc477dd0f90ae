"""Model cards (README.md) of exports: the Hub's front matter, and every figure read from the
run's own records, so that a card which stops reading them, or invents one, fails here."""

import contextlib
import io
import json
import math
import os
import re
import shutil
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing may go online
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import safetensors.numpy
import yaml
from huggingface_hub import ModelCard

from conftest import ROOT, run_py
from jaxbert import hf
from jaxbert.data import corpus
from jaxbert.hf import card
from jaxbert.pretrain import loop
from jaxbert.tasks import compare, saved
from jaxbert.workdir import metrics

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402

# One export of each kind from a module fixture of real runs: a minute of set-up.
pytestmark = pytest.mark.slow

try:  # the test extra installs both; without them, the tests that need neither still run
  import torch
  import transformers
except ImportError:
  torch = transformers = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch and transformers (the test "
                                 "extra)")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, cache_dir):
  """A tiny run fine-tuned on tiny.py's task (sentiment), and run.py's export of its encoder and
  of its classifier."""
  del cache_dir  # requested so the token store goes to the session cache
  base = tmp_path_factory.mktemp("card")
  workdir, encoder, clf = str(base / "run"), str(base / "encoder"), str(base / "classifier")
  loop.train_and_evaluate(tiny.get_config(), workdir)
  compare.run(workdir, tiny.get_config().finetune)
  run_py("--mode=export", f"--workdir={workdir}", f"--out={encoder}")
  run_py("--mode=export", f"--workdir={workdir}", "--classifier=sentiment", f"--out={clf}")
  return workdir, encoder, clf


def _card(out: str) -> tuple[dict, str]:
  """(front matter, prose) of OUT/README.md, the front matter as PyYAML reads it, checked to be
  what huggingface_hub's ModelCard reads too."""
  with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
    text = f.read()
  match = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, re.S)
  assert match, text[:200]
  fields = yaml.safe_load(match.group(1))
  assert ModelCard.load(os.path.join(out, "README.md")).data.to_dict() == fields
  return fields, match.group(2)


def _records(workdir: str, kind: str) -> list[dict]:
  return [r for r in metrics.read(workdir) if r["kind"] == kind]


def _licence_cells() -> dict[str, str]:
  """The licence column of embedded/SOURCES.md's table, read here without jaxbert's parser."""
  with open(os.path.join(corpus.DIR, "SOURCES.md"), encoding="utf-8") as f:
    rows = [line.split("|") for line in f if line.startswith("| `")]
  return {row[1].strip().strip("`"): row[-2].strip() for row in rows}


def test_encoder_card_front_matter(exports):
  _, encoder, _ = exports
  fields, prose = _card(encoder)
  # The embedded corpus: two CC0 files and one in the public domain, which has no Hub identifier.
  assert fields == {"library_name": "transformers", "pipeline_tag": "fill-mask",
                    "license": "other", "license_name": "cc0-1.0-and-public-domain",
                    "language": ["en"],
                    "tags": ["jaxbert", "fill-mask", "cramming", "custom_code"]}
  for name, licence in _licence_cells().items():
    assert f"`embedded/{name}`: " in prose and f"; licence: {licence}" in prose
  assert not os.path.exists(os.path.join(encoder, "README.md.tmp"))


def test_encoder_card_figures_are_the_records(exports):
  workdir, encoder, _ = exports
  _, prose = _card(encoder)
  # The final eval record stands where the exported checkpoint does (its step, tokens, time).
  start, e = _records(workdir, "start")[0], _records(workdir, "eval")[-1]
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  m, seq_len = config["model"], config["data"]["seq_len"]
  for head, value in (("layers", m["num_layers"]), ("hidden width", m["hidden_size"]),
                      ("attention heads", m["num_heads"]),
                      ("feed-forward width", m["ffn_size"]),
                      ("parameters", f"{start['params']:,}")):
    assert f"| {head} | {value} |" in prose
  assert f"| vocabulary | {m['vocab_size']} WordPiece tokens, lowercased |" in prose
  epochs = e["tokens"] / (start["train_rows"] * seq_len)
  assert (f"{start['train_rows']:,} training rows of {seq_len} tokens; {e['tokens']:,} tokens "
          f"seen by step {e['step']}, {epochs:.3g} epochs over the training rows.") in prose
  assert f"- trained: {e['step']} steps in {e['elapsed_s'] / 60:.1f} minutes" in prose
  assert f"- budget: {config['budget_hours']:g} hours" in prose
  assert f"- hardware: {start['device_kind']}" in prose  # as the start record has it
  assert f"at step {e['step']}, on {e['heldout_rows']} held-out rows" in prose
  assert (f"| this model | {e['mlm_loss']:.4f} | {e['mlm_accuracy']:.2%} | "
          f"{e['replaced_accuracy']:.2%} |") in prose
  assert (f"| unigram baseline | {e['unigram_loss']:.4f} | {e['unigram_accuracy']:.2%} | "
          f"{e['unigram_replaced_accuracy']:.2%} |") in prose
  # How to load it: the class names the export's config.json maps.
  with open(os.path.join(encoder, "config.json")) as f:
    auto_map = json.load(f)["auto_map"]
  assert "AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True)" in prose
  for auto, target in auto_map.items():
    if auto != "AutoConfig":
      assert f"`{auto}` gives `{target.rpartition('.')[2]}`" in prose


def _rewrite(workdir: str, edit):
  """metrics.jsonl of `workdir` through `edit(record) -> record or None (dropped)`."""
  records = [r for r in map(edit, metrics.read(workdir)) if r is not None]
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


def test_encoder_card_follows_its_records(exports, tmp_path):
  """Other records, other card; records taken away, figures left out or said unknown."""
  workdir, encoder, _ = exports
  other = str(tmp_path / "other")
  shutil.copytree(workdir, other)
  changed = dict(mlm_loss=1.23456, mlm_accuracy=0.4321, heldout_rows=77)
  _rewrite(other, lambda r: {**r, **changed} if r["kind"] == "eval" else
           {**r, "device_kind": "NVIDIA H100 80GB HBM3", "train_rows": 1000}
           if r["kind"] == "start" else r)
  hf.export(other, str(tmp_path / "out"))
  _, prose = _card(str(tmp_path / "out"))
  assert "| this model | 1.2346 | 43.21% |" in prose and "on 77 held-out rows" in prose
  assert "- hardware: NVIDIA H100 80GB HBM3" in prose
  tokens = _records(workdir, "train")[-1]["tokens"]
  assert f"1,000 training rows of 32 tokens; {tokens:,} tokens" in prose
  assert f"{tokens / (1000 * 32):.3g} epochs" in prose

  _rewrite(other, lambda r: None if r["kind"] in ("start", "eval") else r)
  hf.export(other, str(tmp_path / "bare"))
  fields, prose = _card(str(tmp_path / "bare"))
  # No start record: training from random init would have written one, so the weights' origin,
  # and with it the licence of all they were trained on, is unknown.
  assert fields["license"] == "unknown" and "language" not in fields
  assert "where the weights began is not recorded" in prose
  assert "No held-out MLM evaluation is recorded for step 3." in prose
  assert "unigram" not in prose and "epochs" not in prose and "training rows of" not in prose
  assert "- hardware: unknown" in prose
  # What the checkpoint itself holds stays: its step, tokens and the weights' count.
  params = _records(workdir, "start")[0]["params"]
  assert f"{tokens:,} tokens seen by step 3" in prose and f"| parameters | {params:,} |" in prose


def test_imported_weights_claim_no_corpus(exports, tmp_path):
  """An export imported as a new workdir (step 0) and exported again: its card names the import
  and claims neither the import config's corpus licence nor any evaluation."""
  from jaxbert import config as config_lib

  _, encoder, _ = exports
  workdir = str(tmp_path / "imported")
  hf.import_workdir(encoder, workdir, config_lib.default())
  hf.export(workdir, str(tmp_path / "out"))
  fields, prose = _card(str(tmp_path / "out"))
  assert fields["license"] == "unknown" and "language" not in fields
  assert "imported from a Hugging Face directory (`--mode=import`) as step 0" in prose
  assert "0 tokens seen by step 0" in prose and "unigram" not in prose


def _finetune_row(workdir: str) -> dict:
  rows = [r for r in _records(workdir, "finetune") if r["task"] == "sentiment"]
  assert len(rows) == 1
  return rows[0]


def test_classifier_card_front_matter_and_scores(exports):
  workdir, _, clf = exports
  fields, prose = _card(clf)
  assert fields == {"library_name": "transformers", "pipeline_tag": "text-classification",
                    "license": "other", "license_name": "cc0-1.0-and-mit-and-public-domain",
                    "language": ["en"],
                    "tags": ["jaxbert", "text-classification", "cramming", "custom_code"]}
  meta, params = saved.read(saved.directory(workdir, "sentiment"))
  row = _finetune_row(workdir)
  assert "labels: 0 `negative`, 1 `positive`" in prose
  assert f"on {row['train_examples']} labelled training examples, 1 epoch;" in prose
  assert f"On the task's dev split ({row['dev_examples']:,} examples)" in prose
  assert "| metric | this classifier | pretrained | no pretraining | CNN | bag of words |" in prose
  assert (f"| accuracy | {meta['dev']['accuracy']:.4f} | {row['pretrained']:.4f} | "
          f"{row['no_pretraining']:.4f} | {row['cnn']:.4f} | {row['bag_of_words']:.4f} |") in prose
  n = sum(math.prod(a.shape) for a in safetensors.numpy.load_file(
      os.path.join(saved.directory(workdir, "sentiment"), "params.safetensors")).values())
  assert f"| parameters | {n:,} |" in prose
  # Its pretraining: the checkpoint it was fine-tuned from, as the workdir recorded it.
  e = _records(workdir, "eval")[-1]
  assert meta["checkpoint_step"] == e["step"]
  assert "## Pretraining evaluation" in prose
  assert f"| this model | {e['mlm_loss']:.4f} | {e['mlm_accuracy']:.2%} |" in prose
  assert "MIT licence" in prose  # the task's data, from labelled/SOURCES.md
  assert "AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)" \
      in prose
  assert 'jaxbert.Classifier.load(WORKDIR, name="sentiment")' in prose
  # What the card says jaxbert reads of the export: its encoder.
  assert hf.load(clf).config.num_layers == meta["model"]["num_layers"]


def test_classifier_card_away_from_its_workdir(exports, tmp_path):
  """A classifier directory moved out of its workdir: its own scores stay; the baselines, the
  pretraining and the licence of the pretraining corpus are not invented."""
  workdir, _, _ = exports
  alone = str(tmp_path / "alone")
  shutil.copytree(saved.directory(workdir, "sentiment"), alone)
  hf.export_classifier(alone, str(tmp_path / "out"))
  fields, prose = _card(str(tmp_path / "out"))
  assert fields["license"] == "unknown" and "license_name" not in fields
  assert "language" not in fields
  meta, _ = saved.read(alone)
  assert f"| accuracy | {meta['dev']['accuracy']:.4f} |\n" in prose
  assert "not recorded" in prose and "no pretraining" not in prose
  assert "tokens seen" not in prose and "unigram" not in prose and "hours" not in prose


@pytest.mark.parametrize("text, ident", [
    ("contents CC0 1.0 (database PDDL 1.0); works of the US Government", "cc0-1.0"),
    ("the database is under the Open Data Commons Public Domain Dedication & License 1.0 (PDDL "
     "1.0) and its contents under Creative Commons Zero v1.0 Universal (CC0 1.0)", "cc0-1.0"),
    ("the package, data included, is under the MIT licence", "mit"),
    ("public domain (the copyright has expired)", "public-domain"),
    ("a licence of its own", None)])
def test_licence_of_the_contents(text, ident):
  assert card.licence_id(text) == ident


def test_hub_licence_is_one_identifier_or_says_why_not():
  mit, cc0 = card.Part("a", licence="MIT"), card.Part("b", licence="contents CC0 1.0")
  assert card.hub_licence([mit, mit]) == {"license": "mit"}
  assert card.hub_licence([mit, cc0]) == {"license": "other", "license_name": "cc0-1.0-and-mit"}
  assert card.hub_licence([mit, card.Part("text:notes/*.txt")]) == {"license": "unknown"}


def test_baselines_come_from_the_run_that_kept_the_classifier():
  """Of the finetune records, those whose pretrained seeds hold the kept seed's score: a later
  run of the same task and checkpoint, with other settings, does not lend its baselines."""
  meta = {"task": "t", "checkpoint_step": 5, "seed": 1, "dev": {"accuracy": 0.75}}
  ours = {"kind": "finetune", "task": "t", "checkpoint_step": 5, "metric": "accuracy",
          "pretrained": 0.75, "pretrained_seeds": [0.5, 0.75, 0.8], "cnn": 0.6}
  later = {**ours, "pretrained_seeds": [0.7, 0.74, 0.9], "cnn": 0.1}
  other_step = {**ours, "checkpoint_step": 4, "cnn": 0.2}
  assert card.finetune_rows([ours, later, other_step], meta) == [ours]
  assert card.finetune_rows([later], meta) == []
  lines = card.scores_section(meta, [ours])
  assert "| metric | this classifier | pretrained | CNN |" in lines  # the models it ran, only
  assert "| accuracy | 0.7500 | 0.7500 | 0.6000 |" in lines


def test_original_arch_loads_without_remote_code():
  from jaxbert.model import ModelConfig
  spec = hf.hf_config(ModelConfig(arch="original", vocab_size=64, num_layers=1, hidden_size=8,
                                  num_heads=2, ffn_size=16, max_len=16))
  text = "\n".join(card.encoder_use(spec))
  assert "AutoModelForMaskedLM.from_pretrained(path)\n" in text
  assert "trust_remote_code" not in text and "It loads as transformers' `BertForMaskedLM`" in text
  assert card._tags("original", "fill-mask") == ["jaxbert", "fill-mask", "bert"]


def _run_snippet(out: str) -> str:
  """The card's Python example, run on the export; what it printed."""
  _, prose = _card(out)
  code = re.search(r"```python\n(.*?)```", prose, re.S).group(1)
  assert '"path/to/this/directory"' in code
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(code.replace('"path/to/this/directory"', repr(out)), {})
  return printed.getvalue()


@needs_torch
def test_the_cards_examples_run_in_transformers(exports):
  workdir, encoder, clf = exports
  filled = _run_snippet(encoder)
  assert "'sequence': 'the ship sailed across the" in filled
  labelled = _run_snippet(clf)
  assert re.search(r"\[\{'label': '(negative|positive)', 'score': 0\.\d+", labelled), labelled
  for out, auto, name in ((encoder, transformers.AutoModelForMaskedLM,
                           "JaxbertCrammedForMaskedLM"),
                          (clf, transformers.AutoModelForSequenceClassification,
                           "JaxbertCrammedForSequenceClassification")):
    model = auto.from_pretrained(out, local_files_only=True, trust_remote_code=True)
    assert type(model).__name__ == name and f"`{name}`" in _card(encoder)[1]
  assert list(model.config.id2label.values()) == saved.read(
      saved.directory(workdir, "sentiment"))[0]["labels"]
