"""Hugging Face BERT directories (and jaxbert's crammed exports) read into jaxbert; a new workdir
of one (see the package's docstring for how the layouts map)."""

import json
import os
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import safetensors
import safetensors.numpy
from tokenizers import Tokenizer

from jaxbert import config as config_lib
from jaxbert import files
from jaxbert.config import ConfigError
from jaxbert.data import tokenizer as tokenizer_lib
from jaxbert.model import ModelConfig, count_params

from .names import CRAMMED_TYPE, SPECIAL_TOKENS, crammed_map, name_map, pooler_map, unflatten



def read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    return safetensors.numpy.load_file(path)
  except (safetensors.SafetensorError, ValueError, TypeError) as e:
    raise ConfigError(f"{path} is not a safetensors file jaxbert can read ({e}); convert the "
                      "checkpoint to float32 safetensors") from e


class Imported(NamedTuple):
  config: ModelConfig
  params: dict  # float32 numpy arrays in MaskedLM's tree
  tokenizer: Tokenizer  # jaxbert's WordPiece over the (permuted) vocabulary
  source_ids: np.ndarray  # source_ids[jaxbert id] = the checkpoint's id of that token
  lowercase: bool = True  # whether the tokenizer lowercases (and strips accents)
  # BERT's pooler {"kernel", "bias"}, the fine-tuning Classifier's "pooler" params; None when the
  # checkpoint has none. Apart from `params`: MaskedLM has no pooler, nothing pretrains one.
  pooler: dict | None = None


def _read_json(path: str) -> dict:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist")
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise ConfigError(f"{path} is not valid JSON ({e})") from e


def _read_weights(directory: str) -> dict[str, np.ndarray]:
  path = os.path.join(directory, "model.safetensors")
  if os.path.exists(path):
    tensors = read_safetensors(path)
  elif os.path.exists(os.path.join(directory, "pytorch_model.bin")):
    try:
      import torch
    except ImportError as e:
      raise ConfigError(f"{directory} holds pytorch_model.bin, which needs torch to read; "
                        "install torch, or save the model as safetensors") from e
    state = torch.load(os.path.join(directory, "pytorch_model.bin"), map_location="cpu",
                       weights_only=True)
    tensors = {k: v.float().numpy() for k, v in state.items()}
  else:
    raise FileNotFoundError(f"{directory} holds neither model.safetensors nor pytorch_model.bin")
  # TF-converted checkpoints name norm parameters gamma/beta; bare BertModel saves lack "bert.".
  out = {}
  for name, value in tensors.items():
    name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                       "LayerNorm.bias")
    if name.startswith(("embeddings.", "encoder.", "pooler.")):
      name = "bert." + name
    out[name] = value
  return out


def _vocabulary(directory: str) -> tuple[list[str], bool]:
  """(tokens in id order, lowercase) from vocab.txt or tokenizer.json."""
  settings = {}
  if os.path.exists(os.path.join(directory, "tokenizer_config.json")):
    settings = _read_json(os.path.join(directory, "tokenizer_config.json"))
  lowercase = bool(settings.get("do_lower_case", True))
  path = os.path.join(directory, "vocab.txt")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return [line.rstrip("\n") for line in f], lowercase
  path = os.path.join(directory, "tokenizer.json")
  if os.path.exists(path):
    spec = _read_json(path)
    vocab = spec.get("model", {}).get("vocab")
    if spec.get("model", {}).get("type") != "WordPiece" or not isinstance(vocab, dict):
      raise ConfigError(f"{path} is not a WordPiece tokenizer; jaxbert imports BERT's only")
    lowercase = bool((spec.get("normalizer") or {}).get("lowercase", lowercase))
    return sorted(vocab, key=vocab.get), lowercase
  raise FileNotFoundError(f"{directory} holds neither vocab.txt nor tokenizer.json: the "
                          "vocabulary is needed to map token ids")


def _model_config(hf: dict, path: str) -> ModelConfig:
  if hf.get("model_type") not in (None, "bert"):
    raise ConfigError(f"{path}: model_type {hf.get('model_type')!r} is not BERT; jaxbert imports "
                      "model_type \"bert\" (or its own crammed exports)")
  act = hf.get("hidden_act", "gelu")
  if act != "gelu":  # transformers' "gelu" is the exact erf form, which jaxbert computes
    raise ConfigError(f"{path}: hidden_act={act!r}; jaxbert's original arch computes exact "
                      "GELU (\"gelu\") only")
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise ConfigError(f"{path}: position_embedding_type={hf['position_embedding_type']!r}; "
                      "jaxbert's original arch has learned absolute positions only")
  try:
    return ModelConfig(
        arch="original", vocab_size=hf["vocab_size"], num_layers=hf["num_hidden_layers"],
        hidden_size=hf["hidden_size"], num_heads=hf["num_attention_heads"],
        ffn_size=hf["intermediate_size"], max_len=hf["max_position_embeddings"],
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        init_std=hf.get("initializer_range", 0.02), dtype="float32")
  except KeyError as e:
    raise ConfigError(f"{path} lacks the key {e}, which a BERT config.json holds") from None
  except ValueError as e:
    raise ConfigError(f"{path}: {e}") from None


def load(directory: str) -> Imported:
  """A Hugging Face BERT (or jaxbert crammed) directory as jaxbert config, params and tokenizer.

  Float32 whatever the file holds; set the returned config's dtype to compute in bfloat16.
  """
  config_path = os.path.join(directory, "config.json")
  hf = _read_json(config_path)
  if hf.get("model_type") == CRAMMED_TYPE:
    return _load_crammed(directory, hf)
  config = _model_config(hf, config_path)
  tensors = _read_weights(directory)
  tokens, lowercase = _vocabulary(directory)
  if len(tokens) != config.vocab_size:
    raise ConfigError(f"{directory}: the vocabulary has {len(tokens)} tokens but config.json "
                      f"says vocab_size={config.vocab_size}")
  missing = [t for t in SPECIAL_TOKENS if t not in tokens]
  if missing:
    raise ConfigError(f"{directory}: the vocabulary lacks {missing}, which jaxbert's data code "
                      "needs (BERT's special tokens)")
  first = [tokens.index(t) for t in SPECIAL_TOKENS]
  source_ids = np.array(first + [i for i in range(len(tokens)) if i not in set(first)])

  flat = {}
  for hf_name, path, transpose in name_map(config.num_layers):
    if hf_name not in tensors:
      what = "an MLM head" if hf_name.startswith("cls.") else hf_name
      raise ConfigError(f"{directory}: the checkpoint has no {what} (tensor {hf_name}); jaxbert "
                        "imports BertForMaskedLM or BertForPreTraining checkpoints")
    value = np.array(tensors[hf_name], np.float32)  # a copy: safetensors arrays are read-only
    flat[path] = value.T if transpose else value
  decoder = tensors.get("cls.predictions.decoder.weight")
  if decoder is not None and not np.array_equal(decoder, tensors[name_map(0)[0][0]]):
    raise ConfigError(f"{directory}: the MLM decoder is not tied to the word embeddings; "
                      "jaxbert ties them")
  types = tensors.get("bert.embeddings.token_type_embeddings.weight")
  if types is not None:  # every jaxbert token has type 0: fold its row into the positions
    flat["encoder/embeddings/position/embedding"] += np.asarray(types[0], np.float32)
  flat["encoder/embeddings/word/embedding"] = flat["encoder/embeddings/word/embedding"][source_ids]
  flat["decoder_bias"] = flat["decoder_bias"][source_ids]
  vocab = {tokens[old]: new for new, old in enumerate(source_ids)}
  return Imported(config, unflatten(flat), tokenizer_lib.wordpiece(vocab, lowercase), source_ids,
                  lowercase, _pooler(tensors, directory, config.hidden_size))


def _pooler(tensors: dict, directory: str, hidden: int) -> dict | None:
  """The checkpoint's pooler in the Classifier's layout, or None when it has none."""
  names = [hf_name for hf_name, _, _ in pooler_map()]
  held = [n for n in names if n in tensors]
  if not held:
    return None
  if len(held) < len(names):
    raise ConfigError(f"{directory}: the checkpoint has {held[0]} but not "
                      f"{(set(names) - set(held)).pop()}; a BERT pooler holds both")
  flat = {}
  for hf_name, path, transpose in pooler_map():
    value = np.array(tensors[hf_name], np.float32)
    if value.shape != ((hidden, hidden) if transpose else (hidden,)):
      raise ConfigError(f"{directory}: {hf_name} has shape {list(value.shape)}, not that of a "
                        f"pooler of width {hidden} (config.json's hidden_size)")
    flat[path] = np.ascontiguousarray(value.T) if transpose else value  # as safetensors writes
  return unflatten(flat)["pooler"]


def _load_crammed(directory: str, spec: dict) -> Imported:
  path = os.path.join(directory, "model.safetensors")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist")
  try:
    config = ModelConfig.from_dict(spec["jaxbert"])
  except (KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"{directory}/config.json: not a jaxbert model config ({e})") from None
  tok_path = os.path.join(directory, "tokenizer.json")
  if not os.path.exists(tok_path):
    raise FileNotFoundError(f"{tok_path} does not exist")
  tensors = read_safetensors(path)
  if any(k.startswith("jaxbert.") for k in tensors):  # the names of remote/'s PyTorch model
    flat = {}
    for name, jx, transpose in crammed_map(config.num_layers):
      if f"jaxbert.{name}" not in tensors:
        raise ConfigError(f"{path} has no tensor jaxbert.{name}: not a jaxbert crammed export")
      value = np.array(tensors[f"jaxbert.{name}"], np.float32)
      flat[jx] = value.T if transpose else value
    params = unflatten(flat)
  else:  # exports before the PyTorch code: jaxbert's own names, dotted
    params = unflatten({k.replace(".", "/"): np.asarray(v, np.float32)
                        for k, v in tensors.items()})
  tok = Tokenizer.from_file(tok_path)
  tok.post_processor = None  # jaxbert adds [CLS] and [SEP] itself (add_special_tokens=False)
  lowercase = bool((_read_json(tok_path).get("normalizer") or {}).get("lowercase", True))
  return Imported(config, params, tok, np.arange(config.vocab_size), lowercase)


def import_workdir(directory: str, workdir: str, config) -> str:
  """Makes a new workdir of a Hugging Face BERT (or jaxbert crammed) directory; a summary line.

  The workdir holds config.json (`config` with the imported model's shape), the imported
  tokenizer as tokenizer.json, checkpoint step 0 (the weights, a fresh optimizer state), and, if
  the checkpoint has one, BERT's pooler as pooler.safetensors, which [CLS]-pooled fine-tuning
  starts from (see workdir.pooler): run.py evaluates, fine-tunes and exports it like any trained
  workdir, and --mode=train in it pretrains further (the pooler, which MLM does not train, stays
  as imported). Data settings come from `config`; the token store is encoded with the imported
  tokenizer (see workdir.token_store). It is built aside and renamed into place, so a failure
  leaves nothing; an existing run is never overwritten.
  """
  # orbax and grain: only when a workdir is written
  from jaxbert import checkpoint
  from jaxbert import workdir as workdir_lib
  from jaxbert.pretrain import state

  if os.path.exists(workdir) and os.listdir(workdir):
    raise workdir_lib.WorkdirError(
        f"{workdir} exists and is not empty; import into a new --workdir")
  imported = load(directory)
  config = ml_collections.ConfigDict(config.to_dict())
  m = imported.config
  config.model.update(arch=m.arch, vocab_size=m.vocab_size, num_layers=m.num_layers,
                      hidden_size=m.hidden_size, num_heads=m.num_heads, ffn_size=m.ffn_size,
                      max_len=m.max_len, layer_norm_eps=m.layer_norm_eps, init_std=m.init_std)
  config.data.tokenizer, config.data.lowercase = "", imported.lowercase  # the workdir's own
  config.data.seq_len = min(config.data.seq_len, m.max_len)
  dtype = config.model.dtype  # kept as given ("auto"): the run that trains it may have a GPU
  config = config_lib.resolve(config)
  _, tx, init = state.build(config)
  config.model.dtype = dtype
  expected = jax.eval_shape(init, state.init_key(config)).params
  got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.float32), imported.params)
  if jax.tree.structure(expected) != jax.tree.structure(got) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got))):
    raise ConfigError(f"{directory}: its weights do not form a jaxbert {m.arch} model of the "
                      "shape its config.json gives")
  params = jax.tree.map(jax.numpy.asarray, imported.params)
  train_state = state.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                                 opt_state=tx.init(params))

  with files.replacing_dir(workdir) as tmp:  # empty or absent, checked above
    if imported.pooler is not None:
      safetensors.numpy.save_file(imported.pooler, os.path.join(tmp, workdir_lib.POOLER_FILE))
    imported.tokenizer.save(os.path.join(tmp, "tokenizer.json"))
    workdir_lib.write_config(tmp, config)
    with checkpoint.Checkpoints(tmp, config.train.keep) as ckpts:
      ckpts.save(0, train_state, None, {"step": 0, "elapsed_s": 0.0, "tokens": 0,
                                       "config": config.to_dict(),
                                       "imported_from": os.path.abspath(directory)})
      ckpts.wait()
  n = count_params(params)
  return (f"imported {directory} ({m.arch} arch, {m.num_layers} layers, width {m.hidden_size}, "
          f"{n / 1e6:.1f}M params, vocabulary {m.vocab_size}) into {workdir} as checkpoint step 0")
