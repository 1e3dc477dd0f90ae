"""Hugging Face BERT checkpoints in and out of jaxbert's "original" architecture.

  load(HFDIR)                 config.json + model.safetensors (or pytorch_model.bin) + vocabulary
                              -> ModelConfig, params, tokenizer; for evaluation and fine-tuning
  export(WORKDIR, OUT)        a workdir's checkpoint -> a directory that transformers'
                              BertForMaskedLM and AutoTokenizer load (crammed arch: see below)

The two architectures map one-to-one except in three places, each handled exactly:
- Token types. jaxbert feeds one segment, so every token gets type 0. Import adds the type-0 row
  to every position row (the input sum is unchanged, the word table stays the tied decoder);
  export writes a zero type table. Type-1 rows, sentence pairs and the pooler are not imported.
- Special ids. jaxbert's data code fixes [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4; Hugging Face
  vocabularies put them anywhere (BERT's at 0, 100-103). Import moves those five to the front and
  keeps every other token in order, permuting the embedding rows and decoder bias to match;
  `Imported.source_ids` maps each new id back to the checkpoint's.
- Layouts. A torch Linear weight is [out, in], a flax kernel [in, out]: transposed both ways.

The crammed arch (pre-LN, no biases, GLU, sinusoidal positions) has no transformers class. Its
export is model.safetensors under jaxbert's own parameter names plus a config.json of jaxbert's
ModelConfig ("model_type": "jaxbert-crammed"): `load` reads it back; transformers does not.

Safetensors are read and written here with numpy (the format is a JSON header and raw arrays), so
jaxbert needs neither torch nor the safetensors package; pytorch_model.bin needs torch.
"""

import dataclasses
import json
import os
import shutil
import struct
import tempfile
from typing import NamedTuple

import jax
import ml_dtypes
import numpy as np
from tokenizers import Tokenizer, processors

from jaxbert.config import ConfigError
from jaxbert.data import tokenizer as tokenizer_lib
from jaxbert.model import ModelConfig, count_params

SPECIAL_TOKENS = tokenizer_lib.SPECIAL_TOKENS  # jaxbert ids 0-4, in this order
CRAMMED_TYPE = "jaxbert-crammed"

# ---------------------------------------------------------------------------------------------
# Safetensors.

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
           "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
           "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  with open(path, "rb") as f:
    blob = f.read()
  try:
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
  except (struct.error, ValueError) as e:
    raise ConfigError(f"{path} is not a safetensors file ({e})") from e
  data, out = memoryview(blob)[8 + size:], {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in _DTYPES:
      raise ConfigError(f"{path}: tensor {name} has dtype {info['dtype']}, which jaxbert does "
                        "not read; convert the checkpoint to float32")
    start, end = info["data_offsets"]
    out[name] = np.frombuffer(data[start:end], _DTYPES[info["dtype"]]).reshape(info["shape"])
  return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict | None = None):
  header, offset, arrays = {}, 0, []
  if metadata:
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
  for name in sorted(tensors):
    a = np.asarray(tensors[name], order="C")  # not ascontiguousarray: it makes a scalar 1-d
    header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
    arrays.append(a)
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)  # keeps the arrays 8-byte aligned, as the format recommends
  with open(path + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(raw)) + raw)
    for a in arrays:
      f.write(a.tobytes())
  os.replace(path + ".tmp", path)


# ---------------------------------------------------------------------------------------------
# The name map: (Hugging Face name, jaxbert path, transpose) for every exchanged tensor.

def _linear(hf, jx):
  return [(f"{hf}.weight", f"{jx}/kernel", True), (f"{hf}.bias", f"{jx}/bias", False)]


def _norm(hf, jx):
  return [(f"{hf}.weight", f"{jx}/scale", False), (f"{hf}.bias", f"{jx}/bias", False)]


def name_map(num_layers: int) -> list[tuple[str, str, bool]]:
  """Every tensor of BertForMaskedLM that jaxbert's original arch holds (token types aside)."""
  rows = [("bert.embeddings.word_embeddings.weight", "encoder/embeddings/word/embedding", False),
          ("bert.embeddings.position_embeddings.weight", "encoder/embeddings/position/embedding",
           False),
          *_norm("bert.embeddings.LayerNorm", "encoder/embeddings/norm")]
  for i in range(num_layers):
    hf, jx = f"bert.encoder.layer.{i}", f"encoder/layer_{i}"
    rows += [*_linear(f"{hf}.attention.self.query", f"{jx}/attention/query"),
             *_linear(f"{hf}.attention.self.key", f"{jx}/attention/key"),
             *_linear(f"{hf}.attention.self.value", f"{jx}/attention/value"),
             *_linear(f"{hf}.attention.output.dense", f"{jx}/attention/output"),
             *_norm(f"{hf}.attention.output.LayerNorm", f"{jx}/attention_norm"),
             *_linear(f"{hf}.intermediate.dense", f"{jx}/ffn/input"),
             *_linear(f"{hf}.output.dense", f"{jx}/ffn/output"),
             *_norm(f"{hf}.output.LayerNorm", f"{jx}/ffn_norm")]
  rows += [*_linear("cls.predictions.transform.dense", "transform"),
           *_norm("cls.predictions.transform.LayerNorm", "transform_norm"),
           ("cls.predictions.bias", "decoder_bias", False)]
  return rows


def flatten(params) -> dict[str, np.ndarray]:
  """{"encoder/layer_0/attention/query/kernel": array, ...} of a params pytree."""
  return {"/".join(k.key for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  tree = {}
  for name, value in flat.items():
    *parents, leaf = name.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


# ---------------------------------------------------------------------------------------------
# Import.

class Imported(NamedTuple):
  config: ModelConfig
  params: dict  # float32 numpy arrays in MaskedLM's tree
  tokenizer: Tokenizer  # jaxbert's WordPiece over the (permuted) vocabulary
  source_ids: np.ndarray  # source_ids[jaxbert id] = the checkpoint's id of that token
  lowercase: bool = True  # whether the tokenizer lowercases (and strips accents)


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
                  lowercase)


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
  params = unflatten({k.replace(".", "/"): np.asarray(v, np.float32)
                     for k, v in read_safetensors(path).items()})
  tok = Tokenizer.from_file(tok_path)
  tok.post_processor = None  # jaxbert adds [CLS] and [SEP] itself (add_special_tokens=False)
  lowercase = bool((_read_json(tok_path).get("normalizer") or {}).get("lowercase", True))
  return Imported(config, params, tok, np.arange(config.vocab_size), lowercase)


def import_workdir(directory: str, workdir: str, config) -> str:
  """Makes a new workdir of a Hugging Face BERT (or jaxbert crammed) directory; a summary line.

  The workdir holds config.json (`config` with the imported model's shape), the imported
  tokenizer as tokenizer.json, and checkpoint step 0 (the weights, a fresh optimizer state): run.py
  evaluates, fine-tunes and exports it like any trained workdir, and --mode=train in it pretrains
  further. Data settings come from `config`; the token store is encoded with the imported
  tokenizer (see checkpoint.token_store). It is built aside and renamed into place, so a failure
  leaves nothing; an existing run is never overwritten.
  """
  import ml_collections
  from jaxbert import checkpoint, state  # orbax and grain: only when a workdir is written
  from jaxbert import config as config_lib

  if os.path.exists(workdir) and os.listdir(workdir):
    raise checkpoint.WorkdirError(f"{workdir} exists and is not empty; import into a new --workdir")
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

  parent = os.path.dirname(os.path.abspath(workdir))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(workdir))}.import-",
                         dir=parent)
  try:
    imported.tokenizer.save(os.path.join(tmp, "tokenizer.json"))
    checkpoint.write_config(tmp, config)
    with checkpoint.Checkpoints(tmp, config.train.keep) as ckpts:
      ckpts.save(0, train_state, None, {"step": 0, "elapsed_s": 0.0, "tokens": 0,
                                       "config": config.to_dict(),
                                       "imported_from": os.path.abspath(directory)})
      ckpts.wait()
    if os.path.isdir(workdir):
      os.rmdir(workdir)  # empty, checked above; a file there makes the rename fail instead
    os.rename(tmp, workdir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  n = count_params(params)
  return (f"imported {directory} ({m.arch} arch, {m.num_layers} layers, width {m.hidden_size}, "
          f"{n / 1e6:.1f}M params, vocabulary {m.vocab_size}) into {workdir} as checkpoint step 0")


# ---------------------------------------------------------------------------------------------
# Export.

def hf_config(config: ModelConfig) -> dict:
  """transformers' BertConfig fields for jaxbert's original arch."""
  return {
      "architectures": ["BertForMaskedLM"], "model_type": "bert",
      "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
      "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
      "intermediate_size": config.ffn_size, "hidden_act": "gelu",
      "max_position_embeddings": config.max_len, "type_vocab_size": 2,
      "layer_norm_eps": config.layer_norm_eps, "initializer_range": config.init_std,
      # BERT's fine-tuning dropout; jaxbert has no attention-probability dropout (model.py).
      "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
      "position_embedding_type": "absolute", "pad_token_id": 0, "tie_word_embeddings": True,
      "torch_dtype": "float32"}


def _tokenizer_files(tok: Tokenizer, out: str, lowercase: bool, max_len: int):
  """tokenizer.json with BERT's [CLS] ... [SEP] template, vocab.txt and the two small configs."""
  vocab = tok.get_vocab()
  ids = [vocab.get(t) for t in SPECIAL_TOKENS]
  if ids != list(range(len(SPECIAL_TOKENS))):
    raise ConfigError(f"the tokenizer's special ids are {ids}, not jaxbert's 0-4")
  tok = Tokenizer.from_str(tok.to_str())  # a copy: the caller's keeps no post-processor
  tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
  tok.save(os.path.join(out, "tokenizer.json"))
  with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
    f.writelines(t + "\n" for t in sorted(vocab, key=vocab.get))
  special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
             "sep_token": "[SEP]", "mask_token": "[MASK]"}
  with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
    json.dump(special, f, indent=2)
  with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
               "strip_accents": lowercase, "tokenize_chinese_chars": True,
               "model_max_length": max_len, **special}, f, indent=2)


def export_params(config: ModelConfig, params, tok: Tokenizer, out: str, *,
                  lowercase: bool = True):
  """Writes params of `config` and the tokenizer to `out` (created) as described up top."""
  os.makedirs(out, exist_ok=True)
  flat = {k: np.asarray(v, np.float32) for k, v in flatten(params).items()}
  if config.arch == "crammed":
    write_safetensors(os.path.join(out, "model.safetensors"),
                      {k.replace("/", "."): v for k, v in flat.items()}, {"format": "jaxbert"})
    spec = {"model_type": CRAMMED_TYPE,
            "jaxbert": {**dataclasses.asdict(config), "dtype": "float32"},
            "note": "jaxbert's crammed BERT (pre-LN, no biases, GELU-GLU, scaled sinusoidal "
                    "positions); tensors under jaxbert's parameter names (dots for the pytree "
                    "path); load with jaxbert.hf.load"}
  else:
    tensors = {hf: (flat[path].T if transpose else flat[path])
               for hf, path, transpose in name_map(config.num_layers)}
    tensors["bert.embeddings.token_type_embeddings.weight"] = np.zeros(
        (2, config.hidden_size), np.float32)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    spec = hf_config(config)
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(spec, f, indent=2)
  _tokenizer_files(tok, out, lowercase, config.max_len)


def export(workdir: str, out: str, step: int | None = None) -> str:
  """Exports a workdir's checkpoint (latest by default) to `out`; returns a one-line summary."""
  from jaxbert import state  # orbax and grain: only when a workdir is read
  tok_path = os.path.join(workdir, "tokenizer.json")
  config, model, params, meta = state.restore(workdir, step)
  if not os.path.exists(tok_path):
    raise FileNotFoundError(f"{tok_path} does not exist: the workdir keeps no tokenizer to "
                            "export with its checkpoint")
  model_config = model.config
  export_params(model_config, params, Tokenizer.from_file(tok_path), out,
                lowercase=config.data.lowercase)
  loads = ("transformers' BertForMaskedLM and AutoTokenizer" if model_config.arch == "original"
           else "jaxbert.hf.load (the crammed arch has no transformers class)")
  return f"exported checkpoint step {meta['step']} of {workdir} to {out}; load it with {loads}"
