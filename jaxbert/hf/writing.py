"""A workdir's checkpoint or a saved classifier written for Hugging Face: BERT's classes for the
original arch, remote/'s PyTorch code for the crammed one (see the package's docstring)."""

import json
import os

import numpy as np
import safetensors.numpy
from tokenizers import Tokenizer, processors

from jaxbert import files
from jaxbert.config import ConfigError
from jaxbert.model import ModelConfig, count_params
from jaxbert.tasks import saved

from . import card
from .names import CRAMMED_TYPE, SPECIAL_TOKENS, crammed_map, flatten, name_map, pooler_map


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict | None = None):
  """Written aside and renamed, so an interrupted export leaves no half file under the name."""
  metadata = {k: str(v) for k, v in (metadata or {}).items()}
  with files.replacing(path) as tmp:
    safetensors.numpy.save_file({k: np.asarray(v, order="C") for k, v in tensors.items()}, tmp,
                                metadata=metadata)


def crammed_tensors(config: ModelConfig, flat: dict) -> dict:
  """jaxbert's crammed params under remote/modeling_jaxbert_crammed.py's names."""
  return _named(((f"jaxbert.{t}", path, transpose)
                 for t, path, transpose in crammed_map(config.num_layers)), flat)


def crammed_config(config: ModelConfig, architecture: str) -> dict:
  """config.json of a crammed export: JaxbertCrammedConfig's fields, the auto_map that points
  transformers at the modeling code beside it, and jaxbert's own ModelConfig (for jaxbert.hf.load).
  """
  code = "modeling_jaxbert_crammed."
  return {
      "architectures": [architecture], "model_type": CRAMMED_TYPE,
      "auto_map": {"AutoConfig": "configuration_jaxbert_crammed.JaxbertCrammedConfig",
                   "AutoModel": code + "JaxbertCrammedModel",
                   "AutoModelForMaskedLM": code + "JaxbertCrammedForMaskedLM",
                   "AutoModelForSequenceClassification":
                       code + "JaxbertCrammedForSequenceClassification"},
      "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
      "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
      "intermediate_size": config.ffn_size, "max_position_embeddings": config.max_len,
      "layer_norm_eps": config.layer_norm_eps, "initializer_range": config.init_std,
      "hidden_dropout_prob": 0.1, "pad_token_id": 0, "tie_word_embeddings": True,
      "torch_dtype": "float32",
      # What the model is (saved.model_fields: not how this machine runs it), in float32.
      "jaxbert": {**saved.model_fields(config), "dtype": "float32"}}


def _copy_modeling_code(out: str):
  """The PyTorch code transformers runs for the crammed arch (trust_remote_code=True)."""
  import shutil

  import importlib_resources

  for name in ("configuration_jaxbert_crammed.py", "modeling_jaxbert_crammed.py"):
    with importlib_resources.as_file(
        importlib_resources.files("jaxbert.hf.remote") / name) as source:
      shutil.copyfile(source, os.path.join(out, name))


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


def _named(rows, flat: dict) -> dict:
  """transformers' tensors of jaxbert's flat params, by a names.py map."""
  return {hf: (flat[path].T if transpose else flat[path]) for hf, path, transpose in rows}


def export_params(config: ModelConfig, params, tok: Tokenizer, out: str, *,
                  lowercase: bool = True, pooler: dict | None = None):
  """Writes params of `config` and the tokenizer to `out` (new, empty or an earlier export,
  which it replaces whole) as described up top; with `pooler` (an imported BERT's, original arch),
  its pooler too, which BertForMaskedLM skips and BertModel and BertForSequenceClassification
  load, as from the checkpoint it came from."""
  _check_empty(out)
  with files.replacing_dir(out) as staging:
    _encoder_files(config, params, tok, staging, lowercase, pooler)


def _encoder_files(config: ModelConfig, params, tok: Tokenizer, out: str, lowercase: bool,
                   pooler: dict | None):
  flat = {k: np.asarray(v, np.float32) for k, v in flatten(params).items()}
  if config.arch == "crammed":
    write_safetensors(os.path.join(out, "model.safetensors"), crammed_tensors(config, flat),
                      {"format": "pt"})
    spec = crammed_config(config, "JaxbertCrammedForMaskedLM")
    _copy_modeling_code(out)
  else:
    tensors = _named(name_map(config.num_layers), flat)
    tensors["bert.embeddings.token_type_embeddings.weight"] = np.zeros(
        (2, config.hidden_size), np.float32)
    if pooler is not None:
      tensors.update(_named(pooler_map(), {f"pooler/{k}": v for k, v in pooler.items()}))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    spec = hf_config(config)
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(spec, f, indent=2)
  _tokenizer_files(tok, out, lowercase, config.max_len)


def export(workdir: str, out: str, step: int | None = None) -> str:
  """Exports a workdir's checkpoint (latest by default) to `out`; returns a one-line summary."""
  from jaxbert import workdir as workdir_lib  # orbax: only when a workdir is read

  tok_path = os.path.join(workdir, "tokenizer.json")
  saved = workdir_lib.pretrained(workdir, step)  # the params alone: no optimizer is built
  if not os.path.exists(tok_path):
    raise FileNotFoundError(f"{tok_path} does not exist: the workdir keeps no tokenizer to "
                            "export with its checkpoint")
  model_config = saved.model
  _check_empty(out)
  pooler = workdir_lib.pooler(workdir) if model_config.arch == "original" else None
  with files.replacing_dir(out) as staging:  # a failed export leaves the old one, or none
    _encoder_files(model_config, saved.params, Tokenizer.from_file(tok_path), staging,
                   saved.config.data.lowercase, pooler)
    card.write(staging, card.encoder(workdir, staging, saved.step, saved.meta,
                                     count_params(saved.params)))
  loads = ("transformers' BertForMaskedLM and AutoTokenizer" if model_config.arch == "original"
           else "transformers' AutoModelForMaskedLM, AutoModel or "
           "AutoModelForSequenceClassification with trust_remote_code=True (the modeling code "
           "is in the directory), and AutoTokenizer")
  return f"exported checkpoint step {saved.step} of {workdir} to {out}; load it with {loads}"


def export_classifier(directory: str, out: str) -> str:
  """A saved classifier -> a directory that transformers' AutoModelForSequenceClassification and
  AutoTokenizer load (the crammed arch with trust_remote_code=True; the original arch with [CLS]
  pooling as BertForSequenceClassification); returns a one-line summary."""
  meta, params = saved.read(directory)
  config = ModelConfig.from_dict(meta["model"])
  if config.arch == "original" and meta["pooling"] != "first":
    raise ConfigError(f"{directory} mean-pools its tokens; BertForSequenceClassification reads "
                      "the [CLS] position through its pooler: fine-tune with "
                      "--config.finetune.pooling=first to export")
  _check_empty(out)
  with files.replacing_dir(out) as staging:  # a failed export leaves the old one, or none
    _classifier_files(directory, staging, config, meta, params)
  remote = ", trust_remote_code=True" if config.arch == "crammed" else ""
  return (f"exported the classifier {directory} to {out}; load it with transformers' "
          f"AutoModelForSequenceClassification and AutoTokenizer (from_pretrained(DIR{remote}))")


def _classifier_files(directory: str, out: str, config: ModelConfig, meta: dict, params):
  flat = {k: np.asarray(v, np.float32) for k, v in flatten(params).items()}
  if config.arch == "crammed":
    tensors = {**crammed_tensors(config, flat), "head.weight": flat["head/kernel"].T,
               "head.bias": flat["head/bias"]}
    spec = {**crammed_config(config, "JaxbertCrammedForSequenceClassification"),
            "classifier_pooling": meta["pooling"]}
    _copy_modeling_code(out)
  else:
    tensors = _named([r for r in name_map(config.num_layers) if r[1].startswith("encoder/")],
                     flat)
    tensors["bert.embeddings.token_type_embeddings.weight"] = np.zeros(
        (2, config.hidden_size), np.float32)
    tensors.update({**_named(pooler_map(), flat), "classifier.weight": flat["head/kernel"].T,
                    "classifier.bias": flat["head/bias"]})
    spec = {**hf_config(config), "architectures": ["BertForSequenceClassification"]}
  write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
  regression = meta["labels"] == "regression"
  labels = ["value"] if regression else meta["labels"]
  spec.update({"id2label": dict(enumerate(labels)),
               "label2id": {c: i for i, c in enumerate(labels)}, "num_labels": len(labels),
               "problem_type": "regression" if regression else "single_label_classification"})
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(spec, f, indent=2)
  _tokenizer_files(Tokenizer.from_file(os.path.join(directory, "tokenizer.json")), out,
                   meta.get("lowercase", True), meta["max_len"])
  card.write(out, card.classifier(directory, out, meta, count_params(params)))


def _check_empty(out: str):
  """Nothing of the user's is overwritten: `out` must be new, empty, or an export of ours."""
  if os.path.isdir(out) and os.listdir(out) and not os.path.exists(
      os.path.join(out, "model.safetensors")):
    raise ConfigError(f"{out} is not empty and holds no earlier export; choose a new --out")
