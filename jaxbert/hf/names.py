"""The name map between transformers' BertForMaskedLM and jaxbert's original arch, and jaxbert's
flat parameter names ("encoder/layer_0/attention/query/kernel")."""

import numpy as np
from flax import traverse_util

from jaxbert.data import tokenizer as tokenizer_lib

SPECIAL_TOKENS = tokenizer_lib.SPECIAL_TOKENS  # jaxbert ids 0-4, in this order
CRAMMED_TYPE = "jaxbert-crammed"  # the model_type of jaxbert's own crammed exports


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


def pooler_map() -> list[tuple[str, str, bool]]:
  """BERT's pooler (the dense layer under tanh that reads [CLS]) and the fine-tuning Classifier's
  "pooler": BertModel, BertForPreTraining and BertForSequenceClassification hold one;
  BertForMaskedLM does not."""
  return _linear("bert.pooler.dense", "pooler")


def crammed_map(num_layers: int) -> list[tuple[str, str, bool]]:
  """(torch name, jaxbert path, transposed) of every tensor of JaxbertCrammedModel (remote/):
  the crammed encoder, whose MLM decoder is its word embedding."""
  rows = [("embeddings.word.weight", "encoder/embeddings/word/embedding", False),
          ("embeddings.position.scale", "encoder/embeddings/position/scale", False),
          *_norm("embeddings.norm", "encoder/embeddings/norm")]
  for i in range(num_layers):
    t, jx = f"layers.{i}", f"encoder/layer_{i}"
    rows += [*_norm(f"{t}.attention_norm", f"{jx}/attention_norm"),
             *[(f"{t}.attention.{n}.weight", f"{jx}/attention/{n}/kernel", True)
               for n in ("query", "key", "value", "output")],
             *_norm(f"{t}.ffn_norm", f"{jx}/ffn_norm"),
             (f"{t}.ffn.input.weight", f"{jx}/ffn/input/kernel", True),
             (f"{t}.ffn.output.weight", f"{jx}/ffn/output/kernel", True)]
  return rows + _norm("final_norm", "encoder/final_norm")


def flatten(params) -> dict[str, np.ndarray]:
  """{"encoder/layer_0/attention/query/kernel": array, ...} of a params pytree."""
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  return traverse_util.unflatten_dict(flat, sep="/")
