"""Fine-tuning: the embedded labelled task, the classifier on a real tiny checkpoint, baselines."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT
from jaxbert import checkpoint, data, finetune, metrics, state, train
from jaxbert.config import ConfigError
from jaxbert.data import tasks

sys.path.insert(0, ROOT)
from configs import tiny  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, cache_dir):
  del cache_dir  # requested so the token store goes to the session cache
  path = str(tmp_path_factory.mktemp("finetune") / "run")
  train.train_and_evaluate(tiny.get_config(), path)
  return path


def _quick_cfg(**overrides):
  cfg = finetune.default_config()
  cfg.update({**dict(max_train_examples=48, epochs=1, seeds=1, max_len=32, lr=1e-3,
                     eval_batch_size=512, bow_steps=20), **overrides})
  return cfg


def test_sentiment_loads_with_a_stable_disjoint_split():
  a, b = tasks.load("sentiment"), tasks.load("sentiment")
  assert a["num_labels"] == 2 and a["metric"] == "accuracy"
  assert a["train"] == b["train"] and a["dev"] == b["dev"]
  assert (len(a["train"]), len(a["dev"])) == (8447, 2121)
  for split in ("train", "dev"):
    labels = [y for _, y in a[split]]
    assert set(labels) == {0, 1} and 0.4 < np.mean(labels) < 0.6
    assert all(isinstance(t, str) and t for t, _ in a[split])
  # The source repeats 2 texts under different ids; the split itself is by id, so disjoint.
  assert len({t for t, _ in a["train"]} & {t for t, _ in a["dev"]}) <= 2


def test_unknown_task_is_named():
  with pytest.raises(ConfigError, match="'nope'"):
    tasks.load("nope")


def test_accuracy_matches_hand_count():
  # 3 of 5 agree
  assert finetune.accuracy([1, 0, 1, 1, 0], [1, 1, 1, 0, 0]) == pytest.approx(3 / 5)


def test_bag_of_words_learns_a_separable_toy_problem():
  pos = [(f"a truly great film number{i}", 1) for i in range(20)]
  neg = [(f"an awful dull movie item{i}", 0) for i in range(20)]
  dev = [("great film", 1), ("awful movie", 0), ("truly great", 1), ("dull awful", 0)]
  assert finetune.bag_of_words(pos + neg, dev, 2, finetune.default_config()) == 1.0


def test_encode_adds_cls_sep_and_pads(workdir):
  config, _, _ = finetune.load_pretrained(workdir)
  tok = data.prepare(config.data, config.model.vocab_size).tokenizer()
  tokens, mask = finetune.encode(tok, ["the end", "word " * 100], 8)
  assert tokens[0, 0] == data.CLS_ID and data.SEP_ID in tokens[0]
  n = int(mask[0].sum())
  assert tokens[0, n - 1] == data.SEP_ID and (tokens[0, n:] == data.PAD_ID).all()
  assert mask[1].all() and tokens[1, -1] == data.SEP_ID  # truncated, still ends with [SEP]


def test_encoder_params_come_from_the_checkpoint(workdir):
  config, encoder, step = finetune.load_pretrained(workdir)
  assert step == 3
  _, _, init = state.build(config)
  fresh = init(state.init_key(config)).params["encoder"]
  restored, _ = checkpoint.Checkpoints(workdir).restore(
      None, jax.eval_shape(init, state.init_key(config)))
  leaf = lambda p: np.asarray(p["layer_0"]["attention"]["query"]["kernel"])
  np.testing.assert_array_equal(leaf(encoder), leaf(restored.params["encoder"]))
  assert not np.array_equal(leaf(encoder), leaf(fresh))  # three steps moved it from init


def test_three_step_finetune_runs_and_records(workdir):
  result = finetune.run(workdir, _quick_cfg())
  assert result["task"] == "sentiment" and result["checkpoint_step"] == 3
  for key in ("pretrained", "no_pretraining", "bag_of_words"):
    assert 0.0 <= result[key] <= 1.0 and np.isfinite(result[key])
  assert len(result["pretrained_seeds"]) == len(result["no_pretraining_seeds"]) == 1
  record = [r for r in metrics.read(workdir) if r["kind"] == "finetune"][-1]
  assert record["step"] == 3 and record["pretrained"] == result["pretrained"]
  with open(os.path.join(workdir, "finetune.json")) as f:
    assert json.load(f)["config"]["max_train_examples"] == 48


def test_finetune_is_deterministic_per_seed(workdir):
  config, encoder, _ = finetune.load_pretrained(workdir)
  cfg = _quick_cfg(max_train_examples=32)
  model = finetune.Classifier(
      finetune.ModelConfig.from_dict({**config.model.to_dict(), "dropout": 0.1}), 2)
  rng = np.random.default_rng(0)
  tokens = rng.integers(5, config.model.vocab_size, (32, 32)).astype(np.int32)
  examples = (tokens, np.ones_like(tokens), (tokens[:, 1] % 2).astype(np.int32))
  steps = finetune.trainer(model, cfg, 32)
  scores = [finetune.finetune(model, steps, encoder, examples, examples, cfg, 0) for _ in range(2)]
  assert scores[0] == scores[1]


def test_bad_settings_are_refused(workdir):
  with pytest.raises(ConfigError, match="max_len"):
    finetune.run(workdir, _quick_cfg(max_len=64))  # tiny's model.max_len is 32
  with pytest.raises(KeyError):
    finetune.run(workdir, _quick_cfg(learning_rate=1e-3))
