"""Hugging Face import and export: logits and token ids agree with transformers, offline."""

import functools
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: nothing may go online
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_py
from jaxbert import hf
from jaxbert.config import ConfigError
from jaxbert.data import tokenizer as tokenizer_lib
from jaxbert.model import Encoder, MaskedLM, ModelConfig

try:  # the test extra installs both; without torch, the tests that need none still run
  import torch
except ImportError:
  torch = None
try:
  import transformers
except ImportError:
  transformers = None
needs_torch = pytest.mark.skipif(torch is None or transformers is None,
                                 reason="needs torch and transformers (the test extra)")

SENTENCES = ["The whale swam under the ship.", "Call me Ishmael, said the sailor!",
             "An unknown word: zyzzyva; and café."]
WORDS = ("the a an whale ship sea swam under call me said sailor word and of to in is was "
         "un ##known ##s ##ed ##ing , . ! ; : c ##a ##f ##e é i s h m e l ##l ##h ##m ##i")


def _randomize(params, seed):
  """Every leaf drawn at random (flax inits norms to ones and biases to zeros, which would hide
  a swapped or transposed tensor)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape) + (x.ndim == 1)
                                   for k, x in zip(keys, leaves)])


def _hf_logits(model, ids, mask):
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
  return out.logits.numpy()


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A random BertForMaskedLM with BERT's special ids (PAD 0, the others further on) and a
  BertTokenizerFast over a small vocabulary, saved as transformers saves them."""
  path = str(tmp_path_factory.mktemp("hf"))
  words = WORDS.split()
  vocab = ["[PAD]", *words[:10], "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words[10:]]
  with open(os.path.join(path, "vocab.txt"), "w") as f:
    f.writelines(t + "\n" for t in vocab)
  transformers.BertTokenizerFast(os.path.join(path, "vocab.txt")).save_pretrained(path)
  torch.manual_seed(0)
  config = transformers.BertConfig(
      vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=48, max_position_embeddings=24)
  model = transformers.BertForMaskedLM(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.normal_(1.0 if "LayerNorm.weight" in name else 0.0, 0.3)
  model.save_pretrained(path)
  return path, model


@needs_torch
def test_import_matches_transformers(hf_dir):
  path, model = hf_dir
  imported = hf.load(path)
  c = imported.config
  assert (c.arch, c.num_layers, c.hidden_size, c.num_heads, c.ffn_size, c.max_len) == (
      "original", 2, 32, 4, 48, 24)
  their_tok = transformers.AutoTokenizer.from_pretrained(path)
  # jaxbert's specials are 0-4; every id maps back to the checkpoint's through source_ids.
  assert [imported.tokenizer.token_to_id(t) for t in hf.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
  assert imported.source_ids[1:5].tolist() == [their_tok.convert_tokens_to_ids(t)
                                               for t in hf.SPECIAL_TOKENS[1:]]
  for s in SENTENCES:
    ours = imported.tokenizer.encode(s, add_special_tokens=False).ids
    assert imported.source_ids[ours].tolist() == their_tok(s, add_special_tokens=False).input_ids

  batch = their_tok(SENTENCES, padding=True)
  ids, mask = np.array(batch["input_ids"]), np.array(batch["attention_mask"])
  assert (mask == 0).any()  # padding is part of what is compared
  to_ours = np.argsort(imported.source_ids)
  logits = MaskedLM(c).apply({"params": imported.params}, jnp.asarray(to_ours[ids]),
                             attention_mask=jnp.asarray(mask))
  theirs = _hf_logits(model, ids, mask)[..., imported.source_ids]
  real = mask.astype(bool)
  assert np.abs(np.asarray(logits)[real] - theirs[real]).max() < 1e-4
  assert np.abs(theirs).max() > 1.0  # not trivially small

  # The sparse head (positions) gathers the same rows.
  positions = jnp.array([[1, 3]] * len(SENTENCES))
  sparse = MaskedLM(c).apply({"params": imported.params}, jnp.asarray(to_ours[ids]), positions,
                             attention_mask=jnp.asarray(mask))
  np.testing.assert_allclose(sparse, np.asarray(logits)[:, [1, 3]], atol=1e-5)


@needs_torch
def test_import_pytorch_bin_equals_safetensors(hf_dir, tmp_path):
  path, model = hf_dir
  model.save_pretrained(tmp_path, safe_serialization=False)
  transformers.AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path)
  assert not (tmp_path / "model.safetensors").exists()
  a, b = hf.load(path), hf.load(str(tmp_path))
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


@needs_torch
def test_import_refuses_what_it_cannot_compute(hf_dir, tmp_path):
  path, model = hf_dir
  model.config.hidden_act = "gelu_new"
  try:
    model.save_pretrained(tmp_path)
  finally:
    model.config.hidden_act = "gelu"
  with pytest.raises(ConfigError, match="hidden_act='gelu_new'"):
    hf.load(str(tmp_path))
  model.save_pretrained(tmp_path)  # no tokenizer files beside it
  with pytest.raises(FileNotFoundError, match="vocab.txt nor tokenizer.json"):
    hf.load(str(tmp_path))


def _tiny_tokenizer(tmp_path):
  texts = [s.lower() * 3 for s in SENTENCES] + [WORDS.replace("##", "")] * 3
  return tokenizer_lib.train(texts, vocab_size=96, path=str(tmp_path / "tokenizer.json"))


@needs_torch
def test_export_loads_in_transformers(tmp_path):
  tok = _tiny_tokenizer(tmp_path)
  config = ModelConfig(arch="original", vocab_size=tok.get_vocab_size(), num_layers=2,
                       hidden_size=32, num_heads=4, ffn_size=48, max_len=24)
  model = MaskedLM(config)
  params = _randomize(model.init(jax.random.key(0), jnp.zeros((1, 24), jnp.int32))["params"], 1)
  out = str(tmp_path / "out")
  hf.export_params(config, params, tok, out)

  theirs = transformers.BertForMaskedLM.from_pretrained(out, local_files_only=True).eval()
  their_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  assert isinstance(their_tok, transformers.BertTokenizerFast)
  for s in SENTENCES:
    assert their_tok(s).input_ids == [2, *tok.encode(s, add_special_tokens=False).ids, 3]
  batch = their_tok(SENTENCES, padding=True)
  ids, mask = np.array(batch["input_ids"]), np.array(batch["attention_mask"])
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids),
                                attention_mask=jnp.asarray(mask)))
  real = mask.astype(bool)
  assert np.abs(ours[real] - _hf_logits(theirs, ids, mask)[real]).max() < 1e-4

  back = hf.load(out)  # and in again: the same params (the zero token-type row folds to nothing)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), back.params,
               jax.tree.map(np.asarray, params))
  assert back.source_ids.tolist() == list(range(config.vocab_size))


@pytest.fixture(scope="module")
def crammed_export(tmp_path_factory):
  """A random crammed MaskedLM (every leaf drawn) exported, with padded inputs and its numbers."""
  path = tmp_path_factory.mktemp("crammed")
  tok = _tiny_tokenizer(path)
  config = ModelConfig(arch="crammed", vocab_size=tok.get_vocab_size(), num_layers=2,
                       hidden_size=32, num_heads=4, ffn_size=64, max_len=24)
  params = _randomize(MaskedLM(config).init(jax.random.key(0),
                                            jnp.zeros((1, 24), jnp.int32))["params"], 3)
  out = str(path / "out")
  hf.export_params(config, params, tok, out)
  ids = np.random.default_rng(0).integers(5, config.vocab_size, (3, 20)).astype(np.int64)
  mask = np.ones_like(ids)
  mask[1, 12:], mask[2, 3:] = 0, 0
  ids[mask == 0] = 0
  logits = np.asarray(MaskedLM(config).apply({"params": params}, ids, attention_mask=mask))
  hidden = np.asarray(Encoder(config).apply({"params": params["encoder"]}, ids,
                                            attention_mask=mask))
  return out, config, ids, mask, logits, hidden, params, tok


def test_crammed_export_round_trips_through_jaxbert(crammed_export, tmp_path):
  out, config, *_, params, tok = crammed_export
  back = hf.load(out)
  assert back.config == config
  same = functools.partial(np.testing.assert_array_equal, strict=True)  # shapes too: the scalar
  jax.tree.map(same, back.params, jax.tree.map(np.asarray, params))    # position scale
  assert back.tokenizer.encode(SENTENCES[0]).ids == tok.encode(SENTENCES[0]).ids

  # An export imports into a workdir as step 0, to pretrain further on other text.
  from jaxbert import config as config_lib
  from jaxbert import workdir as workdir_lib
  workdir = str(tmp_path / "again")
  assert "as checkpoint step 0" in hf.import_workdir(out, workdir, config_lib.default())
  restored = workdir_lib.pretrained(workdir).params
  jax.tree.map(same, jax.tree.map(np.asarray, restored), back.params)


@needs_torch
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_crammed_export_computes_jaxberts_numbers_in_transformers(crammed_export, attention):
  out, config, ids, mask, logits, hidden, *_ = crammed_export
  inputs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
  kwargs = dict(local_files_only=True, trust_remote_code=True, attn_implementation=attention)
  mlm = transformers.AutoModelForMaskedLM.from_pretrained(out, **kwargs).eval()
  assert type(mlm).__name__ == "JaxbertCrammedForMaskedLM"
  assert mlm.config._attn_implementation == attention
  with torch.no_grad():
    result = mlm(**inputs, output_hidden_states=True)
  np.testing.assert_allclose(result.logits.numpy(), logits, rtol=0, atol=1e-4)
  assert len(result.hidden_states) == config.num_layers + 1
  base = transformers.AutoModel.from_pretrained(out, **kwargs).eval()
  with torch.no_grad():
    np.testing.assert_allclose(base(**inputs).last_hidden_state.numpy(), hidden, rtol=0,
                               atol=1e-4)
  # The decoder is the word embedding, tied as transformers ties them.
  assert mlm.get_output_embeddings().weight.data_ptr() == \
      mlm.get_input_embeddings().weight.data_ptr()


@needs_torch
def test_crammed_export_fine_tunes_in_pytorch_and_saves(crammed_export, tmp_path):
  """A fresh head with num_labels=3: the loss falls in a few plain torch steps, every parameter
  gets a gradient, and save_pretrained / from_pretrained give the same logits."""
  out, _, ids, mask, *_ = crammed_export
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      out, num_labels=3, local_files_only=True, trust_remote_code=True)
  labels = torch.tensor([0, 1, 2])
  inputs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), labels=labels)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
  losses = []
  for step in range(8):
    loss = model(**inputs).loss
    loss.backward()
    if step == 0:
      missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
      assert missing == []
    optimizer.step()
    optimizer.zero_grad()
    losses.append(float(loss.detach()))
  assert losses[-1] < losses[0]
  model.eval()
  model.save_pretrained(tmp_path / "saved")
  again = transformers.AutoModelForSequenceClassification.from_pretrained(
      tmp_path / "saved", local_files_only=True, trust_remote_code=True).eval()
  with torch.no_grad():
    np.testing.assert_allclose(again(**inputs).logits.numpy(), model(**inputs).logits.numpy(),
                               rtol=0, atol=1e-6)


@needs_torch
@pytest.mark.slow  # trains (and prepares the data of) a 2-step run first
def test_export_mode_of_a_trained_workdir(tmp_path):
  """run.py --mode=export on a 2-step original-arch run; transformers reproduces its logits."""
  workdir, out = str(tmp_path / "run"), str(tmp_path / "hf")
  run_py("--config=configs/tiny.py", f"--workdir={workdir}", "--config.model.arch=original",
         "--config.train.max_steps=2")
  proc = run_py("--mode=export", f"--workdir={workdir}", f"--out={out}")
  assert "BertForMaskedLM" in proc.stdout
  theirs = transformers.BertForMaskedLM.from_pretrained(out, local_files_only=True).eval()
  their_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  from jaxbert import workdir as workdir_lib
  saved = workdir_lib.pretrained(workdir)
  model, params = MaskedLM(saved.model), saved.params
  ids = np.array([their_tok(SENTENCES[0], padding="max_length", max_length=32).input_ids])
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids)))
  assert np.abs(ours - _hf_logits(theirs, ids, np.ones_like(ids))).max() < 1e-4
  missing = run_py("--mode=export", f"--workdir={workdir}", check=False)
  assert missing.returncode != 0 and "--out" in missing.stderr


@pytest.mark.slow  # over 20 s of the default suite; CI runs the slow ones too
@needs_torch
def test_import_mode_makes_a_workdir_to_evaluate_finetune_and_train(hf_dir, tmp_path):
  """run.py --mode=import writes a workdir whose step 0 holds the imported weights; evaluate,
  finetune and further training then run on a token store encoded with the imported vocabulary,
  and a second import into it is refused with nothing changed."""
  path, _ = hf_dir
  workdir = str(tmp_path / "bert")
  proc = run_py("--mode=import", f"--hf={path}", f"--workdir={workdir}",
                "--config=configs/tiny.py")
  assert "as checkpoint step 0" in proc.stdout
  from jaxbert import data
  from jaxbert import workdir as workdir_lib
  saved = workdir_lib.pretrained(workdir)
  config, params = saved.config, saved.params
  assert saved.step == 0 and config.model.arch == "original" and config.data.seq_len == 24
  jax.tree.map(np.testing.assert_array_equal, params, hf.load(path).params)
  tokenizer_json = os.path.join(workdir, "tokenizer.json")
  assert tokenizer_lib.load(tokenizer_json).get_vocab() == hf.load(path).tokenizer.get_vocab()

  # In this process from here on (run.py's modes call these same functions): no start-ups.
  from jaxbert.pretrain import loop, points
  from jaxbert.tasks import compare
  points.checkpoint(workdir)
  store = workdir_lib.token_store(config, workdir)
  assert store.manifest["settings"]["tokenizer"]["type"] == "given"
  with open(tokenizer_json, "rb") as a, open(store.tokenizer_path, "rb") as b:
    assert a.read() == b.read()
  # The store's ids are the imported tokenizer's: its [UNK] id for words outside the vocabulary.
  assert store.train[0].max() < config.model.vocab_size
  assert (np.asarray(store.train[:8]) == data.UNK_ID).any()

  settings = workdir_lib.read_config(workdir).finetune  # tiny.py's, given to the import
  settings.max_len = 24
  assert compare.run(workdir, settings)["rows"][0]["pretrained"] >= 0
  # Pretrains further from step 0, with the workdir's config.json, as run.py --workdir=W does.
  loop.train_and_evaluate(workdir_lib.read_config(workdir), workdir)
  lines = [line for line in open(os.path.join(workdir, "metrics.jsonl")) if '"train"' in line]
  assert len(lines) == 3  # tiny.py's 3 steps
  assert os.path.exists(os.path.join(workdir, "report.md"))
  out = str(tmp_path / "exported")  # step 0 goes out as it came in
  hf.export(workdir, out, 0)
  jax.tree.map(np.testing.assert_array_equal, hf.load(out).params, hf.load(path).params)

  before = sorted(os.listdir(workdir))
  again = run_py("--mode=import", f"--hf={path}", f"--workdir={workdir}", check=False)
  assert again.returncode != 0 and "not empty" in again.stderr
  assert sorted(os.listdir(workdir)) == before


def test_given_tokenizer_is_checked(tmp_path):
  from jaxbert.config import ConfigError as Error
  with pytest.raises(Error, match="does not exist"):
    tokenizer_lib.given(str(tmp_path / "none.json"), 100)
  tok = _tiny_tokenizer(tmp_path)
  with pytest.raises(Error, match="model.vocab_size=50"):
    tokenizer_lib.given(str(tmp_path), 50)
  assert tokenizer_lib.given(str(tmp_path), tok.get_vocab_size()) == str(
      tmp_path / "tokenizer.json")
  vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "a": 5}
  tokenizer_lib.wordpiece(vocab, True).save(str(tmp_path / "swapped.json"))
  with pytest.raises(Error, match=r"\[PAD\] at 1"):
    tokenizer_lib.given(str(tmp_path / "swapped.json"), 100)


_FILL_MASK = """
import json, sys
import numpy as np, torch, transformers
out, arrays = sys.argv[1:]
model = transformers.AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True).eval()
tokenizer = transformers.AutoTokenizer.from_pretrained(out)
a = np.load(arrays)
with torch.no_grad():
  logits = model(input_ids=torch.tensor(a["inputs"], dtype=torch.long)).logits
picked = torch.gather(logits, 1, torch.tensor(a["positions"], dtype=torch.long)[..., None]
                      .expand(-1, -1, logits.shape[-1]))
log_p = torch.log_softmax(picked.double(), -1)
targets = torch.tensor(a["targets"], dtype=torch.long)
w = torch.tensor(a["weights"], dtype=torch.float64)
hits = (picked.argmax(-1) == targets).double()
loss = -log_p.gather(-1, targets[..., None])[..., 0]
print(json.dumps(dict(accuracy=float((hits * w).sum() / w.sum()),
                      loss=float((loss * w).sum() / w.sum()), type=type(model).__name__,
                      mask_id=tokenizer.mask_token_id)))
"""


@pytest.mark.slow
@needs_torch
def test_a_crammed_run_fills_masks_in_transformers_as_in_jaxbert(tmp_path):
  """A tiny crammed run, exported with run.py, loaded in another Python process through
  AutoModelForMaskedLM (trust_remote_code=True): on the held-out rows, with the masks jaxbert's
  evaluation draws, its accuracy and loss are jaxbert's."""
  import json
  import subprocess
  import sys

  from conftest import ROOT
  from jaxbert import workdir as workdir_lib
  from jaxbert.data import loader
  from jaxbert.pretrain import loop, points
  sys.path.insert(0, ROOT)
  from configs import tiny

  workdir, out = str(tmp_path / "run"), str(tmp_path / "hf")
  loop.train_and_evaluate(tiny.get_config(), workdir)
  ours = points.checkpoint(workdir)
  proc = run_py("--mode=export", f"--workdir={workdir}", f"--out={out}")
  assert "trust_remote_code=True" in proc.stdout
  saved = workdir_lib.pretrained(workdir)
  c = saved.config
  rows = workdir_lib.token_store(c, workdir).heldout[:c.eval.max_rows]
  batches = list(loader.heldout_batches(rows, seed=c.eval.seed, batch_size=c.eval.batch_size,
                                        mask_rate=c.data.mask_rate,
                                        vocab_size=c.model.vocab_size))
  arrays = str(tmp_path / "heldout.npz")
  np.savez(arrays, **{k: np.concatenate([b[k] for b in batches])
                      for k in ("inputs", "positions", "targets", "weights")})
  theirs = subprocess.run([sys.executable, "-c", _FILL_MASK, out, arrays], capture_output=True,
                          text=True, check=True, timeout=300)
  result = json.loads(theirs.stdout.strip().splitlines()[-1])
  assert result["type"] == "JaxbertCrammedForMaskedLM" and result["mask_id"] == 4
  assert result["accuracy"] == pytest.approx(ours["mlm_accuracy"], abs=1e-9)
  assert result["loss"] == pytest.approx(ours["mlm_loss"], abs=1e-4)


def test_export_refuses_a_directory_of_other_files(tmp_path):
  from jaxbert.hf import writing
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(ConfigError, match="is not empty and holds no earlier export"):
    writing._check_empty(str(tmp_path))
  assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_export_is_replaced_whole_and_a_failed_one_leaves_the_last(tmp_path, monkeypatch):
  from jaxbert.hf import writing
  tok = _tiny_tokenizer(tmp_path)
  config = ModelConfig(arch="crammed", vocab_size=tok.get_vocab_size(), num_layers=1,
                       hidden_size=16, num_heads=2, ffn_size=32, max_len=24)
  params = MaskedLM(config).init(jax.random.key(0), jnp.zeros((1, 24), jnp.int32))["params"]
  out = tmp_path / "out"
  hf.export_params(config, params, tok, str(out))
  (out / "modeling_jaxbert_crammed.py").write_text("# an edit the next export must not keep\n")
  before = {p.name: p.read_bytes() for p in out.iterdir()}

  def disk_full(*args):
    raise OSError("No space left on device")
  monkeypatch.setattr(writing, "_tokenizer_files", disk_full)  # fails after the weights
  with pytest.raises(OSError, match="No space"):
    hf.export_params(config, params, tok, str(out))
  assert {p.name: p.read_bytes() for p in out.iterdir()} == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tokenizer.json"]  # no debris
  monkeypatch.undo()
  hf.export_params(config, params, tok, str(out))  # an export of ours is replaced, whole
  assert set(p.name for p in out.iterdir()) == set(before)
  assert "an edit" not in (out / "modeling_jaxbert_crammed.py").read_text()


@pytest.mark.slow
@needs_torch
def test_an_imported_pooler_starts_cls_fine_tuning_as_transformers_pools(hf_dir, tmp_path):
  """BERT's pooler survives --mode=import: a [CLS]-pooled classifier fine-tuned from the imported
  workdir starts from it, so its pooled vector is transformers' pooler_output, as is the
  workdir's Encoder with pooling="first". BertForMaskedLM has no pooler, and none is made up."""
  import csv
  import sys

  from conftest import ROOT
  from jaxbert import Classifier, Encoder
  from jaxbert.tasks import compare
  sys.path.insert(0, ROOT)
  from configs import tiny

  vocab_dir, masked_lm = hf_dir
  assert hf.load(vocab_dir).pooler is None
  torch.manual_seed(1)
  model = transformers.BertForPreTraining(transformers.BertConfig(
      **{k: getattr(masked_lm.config, k) for k in (
          "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
          "intermediate_size", "max_position_embeddings")})).eval()
  with torch.no_grad():  # every tensor random, the pooler's bias and the type rows included
    for name, p in model.named_parameters():
      p.normal_(1.0 if "LayerNorm.weight" in name else 0.0, 0.3)
  source = str(tmp_path / "pretraining")
  model.save_pretrained(source)
  their_tok = transformers.AutoTokenizer.from_pretrained(vocab_dir)
  their_tok.save_pretrained(source)
  imported = hf.load(source)
  np.testing.assert_array_equal(imported.pooler["kernel"],
                                model.bert.pooler.dense.weight.detach().numpy().T)

  from jaxbert import workdir as workdir_lib

  workdir = str(tmp_path / "bert")
  config = tiny.get_config()
  hf.import_workdir(source, workdir, config)
  jax.tree.map(np.testing.assert_array_equal, workdir_lib.pooler(workdir), imported.pooler)
  # Fine-tuned at a learning rate whose steps are far below float32's resolution of these
  # weights, the saved classifier is where fine-tuning started.
  data = tmp_path / "labelled.csv"
  with open(data, "w", newline="") as f:
    csv.writer(f).writerows([("text", "label")] + [(s, str(i % 2)) for i, s in
                                                   enumerate(SENTENCES * 3)])
  settings = config.finetune
  settings.update(task=f"file:{data},{data}", lr=1e-30, pooling="first", max_len=24,
                  baselines=False, batch_size=4)
  compare.run(workdir, settings)

  texts = SENTENCES + ["the sailor swam"]
  batch = their_tok(texts, padding=True, return_tensors="pt")
  assert (batch["attention_mask"] == 0).any()  # padding is part of what is compared
  with torch.no_grad():
    theirs = model.bert(**batch).pooler_output.numpy()
  assert np.abs(theirs).max() > 0.5  # a pooler that could tell a fresh one from BERT's
  for ours in (Classifier.load(workdir).embed(texts),
               Encoder.load(workdir, pooling="first").embed(texts)):
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
  # Exported again, the pooler goes with it: BertModel loads BERT's, not a fresh one. (The
  # export numbers the vocabulary as the workdir does: its own tokenizer encodes the texts.)
  out = str(tmp_path / "exported")
  hf.export(workdir, out)
  ours = transformers.AutoTokenizer.from_pretrained(out)(texts, padding=True, return_tensors="pt")
  with torch.no_grad():
    again = transformers.BertModel.from_pretrained(out).eval()(**ours).pooler_output.numpy()
  np.testing.assert_allclose(again, theirs, rtol=0, atol=1e-5)
