"""BERT-style encoder and masked-LM head: the "crammed" recipe and original BERT.

Mixed precision follows what torch autocast does in cramming: parameters and the
residual stream stay float32; every matmul casts its inputs to `dtype`. LayerNorms
run in float32 (flax LayerNorm would promote its statistics to float32 even with
dtype=bfloat16, as `x - mean` upcasts, but keeping its output float32 also keeps
the residual sum in float32, which matters over 16 pre-LN layers). Softmax is
float32 inside jax.nn.dot_product_attention for both the xla and cudnn backends.
"""
import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxbert.cpu import matmul

ARCHS = ("crammed", "original")
ATTENTION = {"auto": None, "xla": "xla", "cudnn": "cudnn"}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  arch: str = "crammed"  # "crammed" | "original"
  vocab_size: int = 32768
  num_layers: int = 16
  hidden_size: int = 768
  num_heads: int = 12
  ffn_size: int = 3072  # crammed: GLU input width (two halves); original: FFN width
  max_len: int = 128
  dropout: float = 0.0  # pretraining off; fine-tuning sets 0.1
  dtype: str = "float32"  # compute dtype: "float32" | "bfloat16"
  layer_norm_eps: float = 1e-12
  init_std: float = 0.02
  # Std of the two matrices that write into the residual stream (attention and FFN outputs) and
  # of the token embeddings; 0 = init_std.
  residual_init_std: float = 0.0
  embedding_init_std: float = 0.0
  # crammed: the position scale's starting value (0 = 1/sqrt(hidden_size), the recipe's), and
  # whether training may change it.
  position_init: float = 0.0
  position_learned: bool = True
  attention: str = "auto"  # dot_product_attention implementation; "auto" -> None
  # The Dense layers and the tied head multiply with jaxbert/cpu/matmul.py: the same products,
  # laid out so that their gradients take XLA's fast CPU matmul. Not part of what the model is:
  # the steps that train and run it set it on a CPU backend (jaxbert.cpu.tuned).
  cpu_products: bool = False

  def __post_init__(self):
    if self.arch not in ARCHS:
      raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
    if self.attention not in ATTENTION:
      raise ValueError(f"attention must be one of {tuple(ATTENTION)}, got {self.attention!r}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError("hidden_size must be divisible by num_heads")
    if self.arch == "crammed" and self.ffn_size % 2:
      raise ValueError("crammed ffn_size is split into two GLU halves; it must be even")

  @classmethod
  def from_dict(cls, d) -> "ModelConfig":
    d = d.to_dict() if hasattr(d, "to_dict") else dict(d)  # ConfigDict or mapping
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:  # a typo would otherwise silently train the default model
      raise ValueError(f"unknown ModelConfig keys: {unknown}")
    return cls(**d)


# Every module below names its parts in `setup`: one style for both archs, and the one that lets
# the tied decoder (`attend`) reach the word embeddings from outside `__call__`. A part is named
# by the attribute that holds it, and those names are the checkpoint's and the exports' keys.

def _dense(c, features, std=0.0):
  return nn.Dense(features, use_bias=c.arch == "original", dtype=jnp.dtype(c.dtype),
                  param_dtype=jnp.float32,
                  dot_general=matmul.dot_general if c.cpu_products else None,
                  kernel_init=nn.initializers.normal(std or c.init_std))


def _norm(c):
  return nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=jnp.float32, param_dtype=jnp.float32)


def _gelu(x):
  # Exact erf GELU, as in BERT and cramming; the tanh approximation differs slightly.
  return jax.nn.gelu(x, approximate=False)


class ScaledSinusoid(nn.Module):
  """Fixed sin/cos table times one learned scalar (cramming's "scaled-sinusoidal")."""
  config: ModelConfig

  def setup(self):
    c = self.config
    pos = np.arange(c.max_len)[:, None]
    freq = 1.0 / 10000 ** (np.arange(0, c.hidden_size, 2) / c.hidden_size)
    self.table = np.zeros((c.max_len, c.hidden_size), np.float32)
    self.table[:, 0::2], self.table[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    # The recipe starts at 1/sqrt(H), which keeps positions small next to the 0.02-std token
    # embeddings.
    start = c.position_init or 1 / math.sqrt(c.hidden_size)
    self.scale = self.param("scale", nn.initializers.constant(start), ())

  def __call__(self, positions):
    scale = self.scale
    if not self.config.position_learned:  # a constant: the param stays for checkpoints, exports
      scale = jax.lax.stop_gradient(scale)
    return jnp.asarray(self.table)[positions] * scale


class Embeddings(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    init = nn.initializers.normal(c.init_std)
    # Lookups stay float32: a gather has no matmul to speed up, and the sum feeds a LayerNorm.
    self.word = nn.Embed(c.vocab_size, c.hidden_size,
                         embedding_init=nn.initializers.normal(c.embedding_init_std or c.init_std))
    self.position = (ScaledSinusoid(c) if c.arch == "crammed"
                     else nn.Embed(c.max_len, c.hidden_size, embedding_init=init))
    self.norm = _norm(c)
    self.dropout = nn.Dropout(c.dropout)

  def __call__(self, tokens, deterministic):
    x = self.word(tokens) + self.position(jnp.arange(tokens.shape[1]))
    return self.dropout(self.norm(x), deterministic=deterministic)

  def attend(self, x):
    # Tied decoder; float32 accumulation *and* output so logits are never rounded to bf16.
    w = self.word.embedding.astype(jnp.dtype(self.config.dtype))
    x = x.astype(w.dtype)
    if self.config.cpu_products:
      return matmul.logits(x, w)
    return jnp.dot(x, w.T, preferred_element_type=jnp.float32)


class Attention(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    # Separate q/k/v kernels map one-to-one onto HF BERT checkpoints.
    self.query, self.key, self.value = (_dense(c, c.hidden_size) for _ in range(3))
    self.output = _dense(c, c.hidden_size, c.residual_init_std)

  def __call__(self, x, mask, queries=None):
    """x [B, L, H] gives keys and values; `queries` [B, P, H] (default x) the rows to output."""
    c = self.config
    queries = x if queries is None else queries
    H = x.shape[-1]
    split = lambda t: t.reshape(*t.shape[:2], c.num_heads, H // c.num_heads)
    q, k, v = split(self.query(queries)), split(self.key(x)), split(self.value(x))
    y = jax.nn.dot_product_attention(q, k, v, mask=mask,
                                     implementation=ATTENTION[c.attention])
    return self.output(y.reshape(*queries.shape[:2], H))


class FeedForward(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    self.input = _dense(c, c.ffn_size)
    self.output = _dense(c, c.hidden_size, c.residual_init_std)

  def __call__(self, x):
    h = self.input(x)
    if self.config.arch == "crammed":
      a, gate = jnp.split(h, 2, axis=-1)  # GELU-GLU: the FFN output width is ffn_size // 2
      h = _gelu(gate) * a
    else:
      h = _gelu(h)
    return self.output(h)


class Block(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    self.attention, self.ffn = Attention(c), FeedForward(c)
    self.attention_norm, self.ffn_norm = _norm(c), _norm(c)
    # Attention-probability dropout is not offered by the fused attention kernels,
    # so dropout only acts on the residual branches. Its name is what it had as an unnamed part
    # when Block was written compactly: a dropout mask derives from it, so runs are unchanged.
    self.dropout = nn.Dropout(c.dropout, name="Dropout_0")

  def __call__(self, x, mask, deterministic, positions=None):
    """[B, L, H] -> [B, L, H], or only the rows at `positions` [B, P] -> [B, P, H]."""
    attn, ffn, norm1, norm2 = self.attention, self.ffn, self.attention_norm, self.ffn_norm
    drop = lambda t: self.dropout(t, deterministic=deterministic)
    rows = (lambda t: t) if positions is None else (lambda t: _gather(t, positions))
    if mask is not None and positions is not None:
      mask = mask[:, :, :positions.shape[1]]  # keys only: every query row is the same
    if self.config.arch == "crammed":  # pre-LN: what lets cramming use its high peak lr
      h = norm1(x)
      x = rows(x) + drop(attn(h, mask, rows(h)))
      return x + drop(ffn(norm2(x)))
    x = norm1(rows(x) + drop(attn(x, mask, rows(x))))
    return norm2(x + drop(ffn(x)))


def _gather(x, positions):
  """x [B, L, H] at positions [B, P] -> [B, P, H]."""
  return jnp.take_along_axis(x, positions[..., None], axis=1)


class Encoder(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    self.embeddings = Embeddings(c)
    self.layers = [Block(c, name=f"layer_{i}") for i in range(c.num_layers)]
    # Pre-LN leaves the residual stream unnormalised; original post-LN needs no final norm.
    self.final_norm = _norm(c) if c.arch == "crammed" else None

  def __call__(self, tokens, *, positions=None, attention_mask=None, deterministic=True):
    """Hidden states [B, L, H]; with `positions` [B, P], only those rows, [B, P, H].

    Only the last layer's outputs are read at `positions`, so it runs its queries, attention,
    output projection and FFN on those rows alone (keys and values still on all): the same
    numbers as gathering them from the full output, for a fraction of the last layer's work.
    """
    # Mask keys only: padded queries produce junk rows that no real position reads.
    # Full [B, 1, L, L] because the cudnn backend rejects a mask broadcast over queries.
    mask = None
    if attention_mask is not None:
      B, L = tokens.shape
      mask = jnp.broadcast_to(attention_mask.astype(bool)[:, None, None, :], (B, 1, L, L))
    x = self.embeddings(tokens, deterministic)
    for i, layer in enumerate(self.layers):
      x = layer(x, mask, deterministic, positions if i == len(self.layers) - 1 else None)
    if positions is not None and not self.layers:
      x = _gather(x, positions)
    return x if self.final_norm is None else self.final_norm(x)

  def attend(self, x):
    return self.embeddings.attend(x)


class MaskedLM(nn.Module):
  config: ModelConfig

  def setup(self):
    c = self.config
    self.encoder = Encoder(c)
    if c.arch == "original":
      self.transform = _dense(c, c.hidden_size)
      self.transform_norm = _norm(c)
      self.decoder_bias = self.param("decoder_bias", nn.initializers.zeros, (c.vocab_size,))

  def __call__(self, tokens, positions=None, *, attention_mask=None, deterministic=True):
    # Sparse head: only the predicted rows pay for the vocab matmul (and for the last layer).
    x = self.encoder(tokens, positions=positions, attention_mask=attention_mask,
                     deterministic=deterministic)
    if self.config.arch == "crammed":
      return self.encoder.attend(x)
    return self.encoder.attend(self.transform_norm(_gelu(self.transform(x)))) + self.decoder_bias


def count_params(params) -> int:
  """Works on real arrays and on jax.eval_shape's ShapeDtypeStructs."""
  return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))


def flops_per_token(cfg: ModelConfig, num_predicted_per_row: int,
                    row_len: int | None = None) -> float:
  """Training (forward + backward) FLOPs per input token of rows of `row_len` tokens (default
  the model's max_len; data.seq_len may be shorter), Kaplan-style.

    6 * N_matmul                  encoder weight matmuls: per layer 4H^2 + H*F_in + F_out*H
                                  (crammed: F_in = ffn_size, F_out = ffn_size / 2; original:
                                  both ffn_size), except that the last layer runs keys and
                                  values (2H^2) on all L positions and the rest on K of them
    + 6 * 2 * L * H * (layers-1)  attention scores QK^T and weighted sum PV, 2*L*H each forward
    + 6 * 2 * K * H               the last layer's attention, K queries only
    + 6 * (H*V [+ H^2]) * K / L   decoder (and original's transform) on K of L positions only
    Embedding gathers, norms, softmax and elementwise ops are ignored (<1%).
    """
  H, L, K, V = cfg.hidden_size, row_len or cfg.max_len, num_predicted_per_row, cfg.vocab_size
  f_out = cfg.ffn_size // 2 if cfg.arch == "crammed" else cfg.ffn_size
  per_layer = 4 * H * H + H * cfg.ffn_size + f_out * H
  last = 2 * H * H + (per_layer - 2 * H * H) * K / L if cfg.num_layers else 0
  n_matmul = max(cfg.num_layers - 1, 0) * per_layer + last
  attention = 6 * 2 * H * (L * max(cfg.num_layers - 1, 0) + (K if cfg.num_layers else 0))
  head = 6 * (H * V + (H * H if cfg.arch == "original" else 0)) * K / L
  return float(6 * n_matmul + attention + head)
