"""How much position signal a crammed model's first layer has: the scaled sinusoid's scale, its
size beside the token embeddings, and how much first-layer attention lands on the neighbours.

  python benchmarks/position_signal.py --workdir=W [--step=N ...] [--rows=256]

For each checkpoint step (default: every kept one) prints one JSON line:
  scale           the sinusoid's scalar (it starts at model.position_init);
  position_rms    rms of the position rows added to the token embeddings (scale × table);
  token_rms       rms of the token-embedding rows of the held-out text;
  neighbour_attention  first-layer attention on the previous or the next token, averaged over
                  heads, queries and held-out rows; uniform attention gives 1 / seq_len.
A masked LM needs to know which tokens are next to the one it predicts; when position_rms is a
small share of token_rms, the layer norm after the sum erases the positions and attention cannot
tell neighbours from the rest of the row.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from jaxbert import checkpoint
from jaxbert import workdir as workdir_lib

flags.DEFINE_string("workdir", None, "a pretraining workdir (crammed arch)", required=True)
flags.DEFINE_multi_integer("step", None, "checkpoint steps (default: all kept)")
flags.DEFINE_integer("rows", 256, "held-out rows to average over")
FLAGS = flags.FLAGS


def _layer_norm(x, p, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + eps) * p["scale"] + p["bias"]


def signal(params, model, tokens) -> dict:
  """The figures above for `params` on `tokens` [B, L]."""
  e = params["encoder"]["embeddings"]
  L = tokens.shape[1]
  pos = np.arange(L)[:, None]
  freq = 1.0 / 10000 ** (np.arange(0, model.hidden_size, 2) / model.hidden_size)
  table = np.zeros((L, model.hidden_size), np.float32)
  table[:, 0::2], table[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
  scale = float(e["position"]["scale"])
  words = jnp.asarray(e["word"]["embedding"])[tokens]
  x = _layer_norm(words + table * scale, e["norm"], model.layer_norm_eps)
  layer = params["encoder"]["layer_0"]
  h = _layer_norm(x, layer["attention_norm"], model.layer_norm_eps)
  heads = lambda t: t.reshape(*t.shape[:2], model.num_heads, -1)
  q = heads(h @ layer["attention"]["query"]["kernel"])
  k = heads(h @ layer["attention"]["key"]["kernel"])
  probs = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1]), -1)
  prev = jnp.diagonal(probs, offset=-1, axis1=2, axis2=3).mean()
  nxt = jnp.diagonal(probs, offset=1, axis1=2, axis2=3).mean()
  return {"scale": scale, "position_rms": float(np.sqrt(((table * scale) ** 2).mean())),
          "token_rms": float(jnp.sqrt((words ** 2).mean())),
          "neighbour_attention": float((prev + nxt) / 2), "uniform": 1 / L}


def main(_):
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it opens
  config = workdir_lib.read_config(FLAGS.workdir)
  store = workdir_lib.token_store(config, FLAGS.workdir)
  tokens = jnp.asarray(np.asarray(store.heldout[:FLAGS.rows]), jnp.int32)
  with checkpoint.Checkpoints(FLAGS.workdir, writer=False) as ckpts:
    steps = FLAGS.step or ckpts.steps()
  for step in steps:
    p = workdir_lib.pretrained(FLAGS.workdir, step)
    if p.model.arch != "crammed":
      raise SystemExit(f"{FLAGS.workdir}: model.arch={p.model.arch!r} has learned positions, "
                       "not the scaled sinusoid this measures")
    print(json.dumps({"step": p.step, **signal(p.params, p.model, tokens)}), flush=True)


if __name__ == "__main__":
  app.run(main)
