"""jaxbert's crammed BERT in PyTorch, for transformers (trust_remote_code=True).

The architecture of Geiping & Goldstein, "Cramming: Training a Language Model on a Single GPU in
One Day" (ICML 2023), as jaxbert trains it (jaxbert/model.py), computing the same numbers:
- embeddings: token embedding plus a fixed sin/cos table times one learned scalar, then LayerNorm;
- blocks: pre-LN; attention and feed-forward without biases; the feed-forward is GELU-GLU (the
  input layer's output split in two halves a and g, then gelu(g) * a);
- a final LayerNorm; the MLM decoder is the token embedding, transposed, without a bias;
- padding is masked on the keys only, through attention_mask (1 = a token, 0 = padding).
Sequence classification reads the mean of the text's final states ("mean") or the first one
("first"), as config.classifier_pooling says, then dropout and one dense layer.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (BaseModelOutput, MaskedLMOutput,
                                           SequenceClassifierOutput)

from .configuration_jaxbert_crammed import JaxbertCrammedConfig


class ScaledSinusoid(nn.Module):
  def __init__(self, config):
    super().__init__()
    h, n = config.hidden_size, config.max_position_embeddings
    position = torch.arange(n, dtype=torch.float64)[:, None]
    frequency = 1.0 / 10000 ** (torch.arange(0, h, 2, dtype=torch.float64) / h)
    table = torch.zeros(n, h, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    self.register_buffer("table", table.float(), persistent=False)
    self.scale = nn.Parameter(torch.tensor(1 / math.sqrt(h)))

  def forward(self, length: int):
    return self.table[:length] * self.scale


class Embeddings(nn.Module):
  def __init__(self, config):
    super().__init__()
    self.word = nn.Embedding(config.vocab_size, config.hidden_size,
                             padding_idx=None)  # jaxbert trains the [PAD] row like any other
    self.position = ScaledSinusoid(config)
    self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)

  def forward(self, input_ids):
    x = self.word(input_ids) + self.position(input_ids.shape[1])
    return self.dropout(self.norm(x))


class Attention(nn.Module):
  def __init__(self, config):
    super().__init__()
    h = config.hidden_size
    self.heads, self.config = config.num_attention_heads, config
    self.query, self.key, self.value, self.output = (nn.Linear(h, h, bias=False)
                                                     for _ in range(4))

  def forward(self, x, keep):
    """x [B, L, H]; keep [B, 1, 1, L] bool, True where a key is a token."""
    b, n, h = x.shape
    split = lambda t: t.view(b, n, self.heads, h // self.heads).transpose(1, 2)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    if self.config._attn_implementation == "sdpa":
      y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    else:  # eager: the same product written out, softmax in float32
      scores = (q @ k.transpose(-1, -2)) / math.sqrt(h // self.heads)
      if keep is not None:
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
      y = torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v
    return self.output(y.transpose(1, 2).reshape(b, n, h))


class FeedForward(nn.Module):
  def __init__(self, config):
    super().__init__()
    self.input = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
    self.output = nn.Linear(config.intermediate_size // 2, config.hidden_size, bias=False)

  def forward(self, x):
    a, gate = self.input(x).chunk(2, dim=-1)
    return self.output(F.gelu(gate) * a)


class Block(nn.Module):
  def __init__(self, config):
    super().__init__()
    self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.attention = Attention(config)
    self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.ffn = FeedForward(config)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)

  def forward(self, x, keep):
    x = x + self.dropout(self.attention(self.attention_norm(x), keep))
    return x + self.dropout(self.ffn(self.ffn_norm(x)))


class JaxbertCrammedPreTrainedModel(PreTrainedModel):
  config_class = JaxbertCrammedConfig
  base_model_prefix = "jaxbert"
  _supports_sdpa = True

  def _init_weights(self, module):
    # jaxbert's init: normal(initializer_range) matrices, unit norms, positions at 1/sqrt(H).
    std = self.config.initializer_range
    if isinstance(module, (nn.Linear, nn.Embedding)):
      module.weight.data.normal_(0.0, std)
      if getattr(module, "bias", None) is not None:
        module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
      module.weight.data.fill_(1.0)
      module.bias.data.zero_()
    elif isinstance(module, ScaledSinusoid):
      module.scale.data.fill_(1 / math.sqrt(self.config.hidden_size))


class JaxbertCrammedModel(JaxbertCrammedPreTrainedModel):
  """The encoder: final states [B, L, H] (after the final LayerNorm)."""

  def __init__(self, config):
    super().__init__(config)
    self.embeddings = Embeddings(config)
    self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
    self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
    self.post_init()

  def get_input_embeddings(self):
    return self.embeddings.word

  def set_input_embeddings(self, value):
    self.embeddings.word = value

  def forward(self, input_ids, attention_mask=None, output_hidden_states=None,
              return_dict=None, **kwargs):
    """hidden_states, when asked for: the embeddings' output, then each block's (before the
    final LayerNorm, which only last_hidden_state has)."""
    return_dict = self.config.use_return_dict if return_dict is None else return_dict
    output_hidden_states = (self.config.output_hidden_states if output_hidden_states is None
                            else output_hidden_states)
    keep = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
    x = self.embeddings(input_ids)
    states = [x]
    for block in self.layers:
      x = block(x, keep)
      states.append(x)
    x = self.final_norm(x)
    hidden = tuple(states) if output_hidden_states else None
    if not return_dict:
      return (x, hidden) if hidden is not None else (x,)
    return BaseModelOutput(last_hidden_state=x, hidden_states=hidden)


class JaxbertCrammedForMaskedLM(JaxbertCrammedPreTrainedModel):
  """MLM logits over the vocabulary from the tied token embedding (no bias, no transform)."""
  _tied_weights_keys = ["decoder.weight"]

  def __init__(self, config):
    super().__init__(config)
    self.jaxbert = JaxbertCrammedModel(config)
    self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
    self.post_init()

  def get_output_embeddings(self):
    return self.decoder

  def set_output_embeddings(self, value):
    self.decoder = value

  def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states=None,
              return_dict=None, **kwargs):
    """labels [B, L]: the token to predict, -100 where nothing is (as transformers' BERT)."""
    return_dict = self.config.use_return_dict if return_dict is None else return_dict
    out = self.jaxbert(input_ids, attention_mask, output_hidden_states, return_dict=True)
    logits = self.decoder(out.last_hidden_state).float()
    loss = None
    if labels is not None:
      loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                             ignore_index=-100)
    if not return_dict:
      rest = (logits,) + ((out.hidden_states,) if out.hidden_states is not None else ())
      return ((loss,) + rest) if loss is not None else rest
    return MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


class JaxbertCrammedForSequenceClassification(JaxbertCrammedPreTrainedModel):
  """num_labels logits (one value for regression) from the pooled final states."""

  def __init__(self, config):
    super().__init__(config)
    self.num_labels = config.num_labels
    self.jaxbert = JaxbertCrammedModel(config)
    self.dropout = nn.Dropout(config.hidden_dropout_prob)
    self.head = nn.Linear(config.hidden_size, config.num_labels)
    self.post_init()

  def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states=None,
              return_dict=None, **kwargs):
    return_dict = self.config.use_return_dict if return_dict is None else return_dict
    out = self.jaxbert(input_ids, attention_mask, output_hidden_states, return_dict=True)
    x = out.last_hidden_state
    if self.config.classifier_pooling == "mean":
      w = (torch.ones_like(input_ids) if attention_mask is None else attention_mask)
      w = w.to(x.dtype)[..., None]
      pooled = (x * w).sum(1) / w.sum(1).clamp(min=1.0)
    else:
      pooled = x[:, 0]
    logits = self.head(self.dropout(pooled)).float()
    loss = None
    if labels is not None:
      if self.num_labels == 1 or self.config.problem_type == "regression":
        loss = F.mse_loss(logits.squeeze(-1), labels.float())
      else:
        loss = F.cross_entropy(logits, labels.view(-1))
    if not return_dict:
      rest = (logits,) + ((out.hidden_states,) if out.hidden_states is not None else ())
      return ((loss,) + rest) if loss is not None else rest
    return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)
