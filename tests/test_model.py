import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from jaxbert import cpu
from jaxbert.model import Encoder, MaskedLM, ModelConfig, count_params, flops_per_token

TINY = dict(vocab_size=101, num_layers=2, hidden_size=32, num_heads=4, ffn_size=64, max_len=16)
B, L, K = 2, 16, 5


def tiny(arch, **kw):
  return ModelConfig(arch=arch, **{**TINY, **kw})


def tokens(seed=0, length=L):
  return jax.random.randint(jax.random.key(seed), (B, length), 0, TINY["vocab_size"])


def positions():
  return jnp.array([[0, 3, 7, 8, 15], [1, 2, 4, 9, 14]], jnp.int32)


def init(cfg):
  return MaskedLM(cfg).init(jax.random.key(0), tokens())["params"]


def flat(params):
  return flatten_dict(params, sep="/")


@pytest.mark.parametrize("arch", ["crammed", "original"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_shapes_and_dtypes(arch, dtype):
  cfg = tiny(arch, dtype=dtype)
  params = init(cfg)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  model = MaskedLM(cfg)
  dense = model.apply({"params": params}, tokens())
  sparse = model.apply({"params": params}, tokens(), positions())
  assert dense.shape == (B, L, cfg.vocab_size) and dense.dtype == jnp.float32
  assert sparse.shape == (B, K, cfg.vocab_size) and sparse.dtype == jnp.float32
  hidden = Encoder(cfg).apply({"params": params["encoder"]}, tokens())
  assert hidden.shape == (B, L, cfg.hidden_size)
  # bf16 compute must stay close to the float32 model with the same weights.
  ref = MaskedLM(dataclasses.replace(cfg, dtype="float32")).apply({"params": params}, tokens())
  np.testing.assert_allclose(dense, ref, atol=0.05 if dtype == "bfloat16" else 0)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["crammed", "original"])
def test_sparse_head_matches_dense(arch):
  cfg = tiny(arch)
  params = init(cfg)
  model = MaskedLM(cfg)
  dense = model.apply({"params": params}, tokens())
  sparse = model.apply({"params": params}, tokens(), positions())
  gathered = jnp.take_along_axis(dense, positions()[..., None], axis=1)
  np.testing.assert_allclose(sparse, gathered, rtol=1e-5, atol=1e-6)
  # The last layer runs on the predicted rows only: the gradients must be those of the full
  # model read at those rows, padding mask included.
  pad = jnp.arange(L)[None, :] < jnp.array([L, L - 3])[:B, None]
  target = jax.random.normal(jax.random.key(7), (B, K, cfg.vocab_size))

  def loss(p, sparse_path):
    if sparse_path:
      out = model.apply({"params": p}, tokens(), positions(), attention_mask=pad)
    else:
      out = jnp.take_along_axis(model.apply({"params": p}, tokens(), attention_mask=pad),
                                positions()[..., None], axis=1)
    return jnp.sum(out * target)

  g_sparse, g_dense = (jax.grad(loss)(params, s) for s in (True, False))
  for (name, a), b in zip(flat(g_sparse).items(), flat(g_dense).values()):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cpu_gradients_take_the_fast_matmul_path(dtype):
  # Speed only (the numbers are the plain products', tests/test_matmul.py): this guards the wiring
  # of matmul.dot_general and matmul.logits into the model, which no numeric test would notice.
  def barriers(cfg):
    loss = lambda p: MaskedLM(cfg).apply({"params": p}, tokens(), positions()).sum()
    return str(jax.make_jaxpr(jax.grad(loss))(init(cfg))).count("optimization_barrier")

  # Six Dense layers per block, and the head (10 predicted rows here, under its width of 32);
  # only where the step opts in (jaxbert.cpu.tuned sets it on a CPU backend).
  assert barriers(tiny("crammed", dtype=dtype, cpu_products=True)) > 0
  assert barriers(tiny("crammed", dtype=dtype)) == 0
  assert cpu.tuned(tiny("crammed", dtype=dtype)).cpu_products == (jax.default_backend() == "cpu")


def test_crammed_structure():
  cfg = tiny("crammed")
  params = flat(init(cfg))
  biases = [k for k in params if k.endswith("/bias")]
  assert biases and all(k.split("/")[-2].endswith("norm") for k in biases), biases
  # Tied decoder: the word embedding is the only vocab-sized matrix.
  assert [k for k, v in params.items() if cfg.vocab_size in v.shape] == [
      "encoder/embeddings/word/embedding"]
  assert "encoder/final_norm/scale" in params
  np.testing.assert_allclose(params["encoder/embeddings/position/scale"], 1 / math.sqrt(32))
  assert params["encoder/layer_0/ffn/input/kernel"].shape == (32, 64)
  assert params["encoder/layer_0/ffn/output/kernel"].shape == (32, 32)  # GLU halves 64 -> 32


def test_original_structure():
  params = flat(init(tiny("original")))
  for k in ("attention/query", "attention/key", "attention/value", "attention/output",
            "ffn/input", "ffn/output"):
    assert f"encoder/layer_1/{k}/bias" in params
  assert params["encoder/embeddings/position/embedding"].shape == (16, 32)
  assert params["decoder_bias"].shape == (101,) and "transform/kernel" in params
  assert [k for k, v in params.items() if v.ndim == 2 and 101 in v.shape] == [
      "encoder/embeddings/word/embedding"]
  assert not any("final_norm" in k for k in params)


def shape_count(cfg):
  shapes = jax.eval_shape(
      lambda: MaskedLM(cfg).init(jax.random.key(0), jnp.zeros((1, cfg.max_len), jnp.int32)))
  return count_params(shapes["params"])


def test_param_count_crammed():
  H, F, V, layers = 768, 3072, 32768, 16
  norm = 2 * H
  layer = 4 * H * H + H * F + (F // 2) * H + 2 * norm  # bias-free q,k,v,o + GLU in/out + 2 LNs
  embedding = V * H
  expected = embedding + 1 + norm + layers * layer + norm  # + scalar, embedding LN, final LN
  assert shape_count(ModelConfig()) == expected == 119_589_889
  assert round((expected - embedding) / 1e6, 1) == 94.4


def test_param_count_original_bert_base():
  H, F, V, layers, max_len = 768, 3072, 30522, 12, 512
  cfg = ModelConfig(arch="original", num_layers=layers, vocab_size=V, max_len=max_len)
  layer = 4 * (H * H + H) + (H * F + F) + (F * H + H) + 2 * 2 * H
  embeddings = V * H + max_len * H + 2 * H
  head = H * H + H + 2 * H + V  # transform, its LN, decoder bias
  expected = embeddings + layers * layer + head
  # HF BertForMaskedLM (bert-base-uncased) has 109,514,298; we drop the 2 x 768 token types.
  assert expected == 109_514_298 - 2 * H
  assert shape_count(cfg) == expected


@pytest.mark.parametrize("arch", ["crammed", "original"])
def test_padding_does_not_change_real_positions(arch):
  cfg = tiny(arch)
  params = init(cfg)
  model = MaskedLM(cfg)
  n = 10
  short = tokens(1, n)
  padded = jnp.concatenate([short, jnp.zeros((B, L - n), short.dtype)], axis=1)
  mask = jnp.arange(L)[None, :] < n
  ref = model.apply({"params": params}, short)
  out = model.apply({"params": params}, padded, attention_mask=jnp.broadcast_to(mask, (B, L)))
  np.testing.assert_allclose(out[:, :n], ref, rtol=1e-5, atol=1e-5)
  unmasked = model.apply({"params": params}, padded)
  assert not np.allclose(unmasked[:, :n], ref, atol=1e-3)  # the mask really did something


def test_dropout():
  cfg = tiny("crammed", dropout=0.1)
  params = init(cfg)
  model = MaskedLM(cfg)
  a = model.apply({"params": params}, tokens())
  np.testing.assert_array_equal(a, model.apply({"params": params}, tokens()))
  run = lambda seed: model.apply({"params": params}, tokens(), deterministic=False,
                                 rngs={"dropout": jax.random.key(seed)})
  assert not np.allclose(run(1), run(2))
  np.testing.assert_array_equal(run(1), run(1))


def test_from_dict():
  cfg = ModelConfig.from_dict({"arch": "original", "num_layers": 2})
  assert cfg.arch == "original" and cfg.num_layers == 2 and cfg.hidden_size == 768
  with pytest.raises(ValueError, match="num_layer"):
    ModelConfig.from_dict({"num_layer": 2})
  with pytest.raises(ValueError):
    ModelConfig.from_dict({"arch": "gpt"})


def test_from_config_dict():
  ml_collections = pytest.importorskip("ml_collections")
  cfg = ModelConfig.from_dict(ml_collections.ConfigDict({"dtype": "bfloat16", "dropout": 0.1}))
  assert cfg.dtype == "bfloat16" and cfg.dropout == 0.1


def test_flops_per_token():
  cfg = ModelConfig()
  H, L, V, K = 768, 128, 32768, 32
  layer = 4 * H * H + H * 3072 + 1536 * H
  full = 6 * 16 * layer + 12 * L * H * 16 + 6 * H * V * K / L
  # About 0.62 GFLOP per token: 6N for the 94M non-embedding params, attention and the sparse
  # head (the crammed BERT of Geiping & Goldstein, ICML 2023), every layer on every position.
  assert 0.61e9 < full < 0.63e9
  # Executed: the last layer runs keys and values on all L positions, the rest on K of them.
  last = 2 * H * H + (layer - 2 * H * H) * K / L
  expected = 6 * (15 * layer + last) + 12 * H * (15 * L + K) + 6 * H * V * K / L
  assert flops_per_token(cfg, K) == expected
  # Every position predicted: every layer runs in full, and so does the head.
  assert flops_per_token(cfg, L) == full + 6 * H * V * (L - K) / L
  # Rows shorter than max_len (data.seq_len 64 of 128): attention spans 64 keys, and K of 64
  # positions run the last layer and the head.
  short = 6 * (15 * layer + 2 * H * H + (layer - 2 * H * H) * K / 64) + 12 * H * (15 * 64 + K) \
      + 6 * H * V * K / 64
  assert flops_per_token(cfg, K, 64) == short


def test_init_stds_and_position_scale_options():
  base = flat(init(tiny("crammed")))
  assert base["encoder/embeddings/position/scale"] == pytest.approx(1 / math.sqrt(32))
  cfg = tiny("crammed", residual_init_std=0.2, embedding_init_std=0.5, position_init=1.5)
  params = flat(init(cfg))
  assert params["encoder/embeddings/position/scale"] == pytest.approx(1.5)
  assert float(np.std(params["encoder/embeddings/word/embedding"])) == pytest.approx(0.5, rel=0.1)
  for name in ("attention/output", "ffn/output"):
    assert float(np.std(params[f"encoder/layer_0/{name}/kernel"])) == pytest.approx(0.2, rel=0.1)
  assert float(np.std(params["encoder/layer_0/attention/query/kernel"])) == pytest.approx(
      0.02, rel=0.15)


@pytest.mark.parametrize("learned", [True, False])
def test_position_scale_trains_only_when_learned(learned):
  cfg = tiny("crammed", position_learned=learned)
  model = MaskedLM(cfg)
  params = init(cfg)
  loss = lambda p: jnp.mean(model.apply({"params": p}, tokens()) ** 2)
  grad = jax.grad(loss)(params)["encoder"]["embeddings"]["position"]["scale"]
  assert (float(grad) != 0.0) == learned
