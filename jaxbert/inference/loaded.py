"""Saved classifiers and pretrained encoders, loaded to run on new texts: jaxbert's Python API.

  from jaxbert import Classifier, Encoder
  clf = Classifier.load("workdirs/quick")   # the workdir's only classifier (or name="sentiment")
  clf.predict(["a fine film"])  # [{"label": "positive", "probabilities": {...}}], as --mode=predict
  clf.probabilities(texts)      # float32 [N, classes], columns in clf.labels order
  clf.embed(texts)              # float32 [N, hidden]: the pooled vector the head reads
  Encoder.load("workdirs/quick").embed(texts)  # a pretrained workdir's encoder, mean-pooled

A blank text (empty, whitespace only, or None; for a pair, either side) has nothing to classify:
the model never sees it, and its answer is a null in its place, so answers stay aligned with
texts: None in predict()'s list, a row of NaN in the arrays (`blanks` says which rows those are).

Neither builds an optimizer. Texts run in batches of a few fixed shapes (rows and length rounded
up, see `Runner`), so each shape compiles once and any number of texts runs without recompiling.
A batch holds about TOKENS_PER_BATCH tokens: on a 2-core CPU, 64 rows of 32 tokens ran 1.3×
(crammed) and 1.5× (original arch) as fast per token as 256 rows of 32 (BENCHMARKS.md,
"Predicting").
"""
import json
import os

import jax
import numpy as np
from tokenizers import Tokenizer

from jaxbert import cpu, files
from jaxbert import workdir as workdir_lib
from jaxbert.config import ConfigError, compute_dtype
from jaxbert.model import ModelConfig
from jaxbert.tasks import classifier as classifier_lib
from jaxbert.tasks import saved

TOKENS_PER_BATCH = 4096  # a batch's rows × length: XLA's CPU kernels ran fastest near this
SMALL_ROWS = (8, 64)  # the last texts of a chunk fill one of these, not a whole batch
CHUNK = 8192  # texts encoded at a time


def length_buckets(max_len: int) -> list[int]:
  """Padded lengths: multiples of 16 up to 128, then of 64, and max_len itself. Texts are sorted
  by length first, so a batch pads to little more than its longest text."""
  out = [n for n in range(16, min(max_len, 128) + 1, 16)]
  out += [n for n in range(192, max_len + 1, 64)]
  return sorted(set(n for n in out if n < max_len) | {max_len})


def batch_rows(width: int) -> int:
  """Rows of a full batch of this length: TOKENS_PER_BATCH tokens, a power of two in [8, 256]."""
  rows = 8
  while rows * 2 * width <= TOKENS_PER_BATCH and rows < 256:
    rows *= 2
  return rows


class Runner:
  """A Classifier module, its params and tokenizer, run over texts in fixed-shape batches.

  Texts are encoded as fine-tuning encoded them, sorted by length, cut into batches of
  about TOKENS_PER_BATCH tokens padded to a length bucket, and the results put back in input
  order.
  """

  def __init__(self, model: ModelConfig, params, tokenizer: Tokenizer, max_len: int,
               pooling: str, num_outputs: int):
    module = classifier_lib.Classifier(cpu.tuned(model), num_outputs, pooling)
    self.tokenizer, self.max_len, self.model, self.num_outputs = (
        tokenizer, max_len, model, num_outputs)
    self.params = jax.device_put(params)
    self._outputs = jax.jit(lambda p, t, m: module.apply({"params": p}, t, m))
    self._pooled = jax.jit(lambda p, t, m: module.apply({"params": p}, t, m, pooled=True))
    self._buckets = length_buckets(max_len)

  def run(self, what: str, text_a, text_b=None) -> tuple[np.ndarray, int]:
    """(outputs or pooled vectors [N, ...] in input order, how many texts were cut); the rows
    of blank texts (see `blanks`) are NaN, and the model never runs on them."""
    empty = blanks(text_a, text_b)
    if empty.any():
      keep = np.flatnonzero(~empty)
      out, cut = self.run(what, [text_a[i] for i in keep],
                          None if text_b is None else [text_b[i] for i in keep])
      full = np.full((len(text_a), *out.shape[1:]), np.nan, np.float32)
      full[keep] = out
      return full, cut
    fn = self._outputs if what == "outputs" else self._pooled
    parts, cut = [], 0
    for s in range(0, len(text_a), CHUNK):  # encoded a chunk at a time: memory stays flat
      out, c = self._chunk(fn, text_a[s:s + CHUNK], None if text_b is None else
                           text_b[s:s + CHUNK])
      parts.append(out)
      cut += c
    if not parts:
      width = self.model.hidden_size if what == "pooled" else self.num_outputs
      return np.zeros((0, width), np.float32), 0
    return np.concatenate(parts), cut

  def _bucket(self, length: int) -> int:
    return next(b for b in self._buckets if b >= length)

  def _chunk(self, fn, text_a, text_b):
    tokens, mask, cut = classifier_lib.encode(self.tokenizer, text_a, self.max_len, text_b)
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    results, start, n = None, 0, len(order)
    while start < len(order):
      # Sorted ascending: a batch's length is that of the last text it takes.
      rows = batch_rows(self._bucket(lengths[order[start]]))
      rows = min(rows, batch_rows(self._bucket(lengths[order[min(start + rows, n) - 1]])))
      rows = next((r for r in SMALL_ROWS if r >= n - start and r < rows), rows)
      index = order[start:start + rows]
      take, width = classifier_lib.padded_index(index, rows), self._bucket(lengths[index].max())
      out = np.asarray(fn(self.params, tokens[take, :width], mask[take, :width]),
                       np.float32)[:len(index)]
      if results is None:
        results = np.empty((len(order), *out.shape[1:]), np.float32)
      results[index] = out
      start += rows
    return results, cut


def _texts(texts) -> list[str]:
  if isinstance(texts, str):
    raise TypeError("pass a list of texts, not one string: predict([\"a fine film\"])")
  return ["" if t is None else str(t) for t in texts]  # None is blank, not the text "None"


def blanks(texts, text_b=None) -> np.ndarray:
  """bool [N]: the texts with nothing in them (empty or whitespace only, or None; for a pair,
  either side), whose results are null: None in predict(), a row of NaN in the arrays."""
  empty = np.array([not t.strip() for t in _texts(texts)], bool)
  if text_b is not None:
    empty |= np.array([not t.strip() for t in _texts(text_b)], bool)
  return empty


class Classifier:
  """A fine-tuned classifier: labels, probabilities and embeddings of new texts."""

  def __init__(self, path: str, meta: dict, params: dict):
    self.path, self.meta = path, meta
    self.labels = None if meta["labels"] == "regression" else list(meta["labels"])
    self.max_len, self.pooling, self.pair = meta["max_len"], meta["pooling"], meta["pair"]
    self.tokenizer = tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    # Computing in this machine's dtype, whatever fine-tuned it; logits are float32 either way.
    self.model = ModelConfig.from_dict({**meta["model"], "dtype": compute_dtype()})
    self._runner = Runner(self.model, params, tokenizer, self.max_len, self.pooling,
                          1 if self.labels is None else len(self.labels))
    self.last_cut = 0  # texts of the last call longer than max_len (cut, not refused)
    self.last_blank = 0  # blank texts of the last call (null answers)

  @classmethod
  def load(cls, path: str, name: str | None = None) -> "Classifier":
    """A classifier directory, or a workdir's classifier `name` (optional if it holds one)."""
    directory = find(path, name)
    return cls(directory, *saved.read(directory))

  @property
  def regression(self) -> bool:
    return self.labels is None

  def _run(self, what, texts, text_b):
    a = _texts(texts)
    b = None if text_b is None else _texts(text_b)
    if self.pair and b is None:
      raise ValueError(f"{self.path} classifies pairs of texts: pass text_b as well")
    if b is not None and (not self.pair or len(b) != len(a)):
      raise ValueError("text_b: only for a pair classifier, one second text per text" if
                       not self.pair else f"text_b holds {len(b)} texts, texts {len(a)}")
    out, self.last_cut = self._runner.run(what, a, b)
    self.last_blank = int(blanks(a, b).sum())
    return out

  def outputs(self, texts, text_b=None) -> np.ndarray:
    """float32 logits [N, classes], or values [N] for regression; NaN for a blank text."""
    out = self._run("outputs", texts, text_b)
    return out[:, 0] if self.regression and len(out) else out

  def probabilities(self, texts, text_b=None) -> np.ndarray:
    """float32 [N, classes], the columns in `labels` order; a row of NaN for a blank text."""
    if self.regression:
      raise ValueError(f"{self.path} is a regression model: use predict() or outputs()")
    return np.asarray(jax.nn.softmax(self.outputs(texts, text_b), axis=-1), np.float32)

  def predict(self, texts, text_b=None) -> list[dict | None]:
    """One object per text, as --mode=predict writes them: {"label", "probabilities"} or
    {"value"} for regression; None for a blank text (see `blanks`)."""
    a, b = _texts(texts), None if text_b is None else _texts(text_b)
    if self.regression:
      answers = [{"value": float(v)} for v in self.outputs(a, b)]
    else:
      answers = [answer(self.labels, p) for p in self.probabilities(a, b)]
    # From the texts, not from NaN: a model that computes NaN must not pass for a blank text.
    return [None if empty else x for empty, x in zip(blanks(a, b), answers)]

  def embed(self, texts, text_b=None) -> np.ndarray:
    """float32 [N, hidden]: the pooled output of the fine-tuned encoder (what the head reads);
    a row of NaN for a blank text."""
    return self._run("pooled", texts, text_b)


def answer(labels: list, probabilities: np.ndarray) -> dict:
  p = [float(f"{x:.6g}") for x in probabilities]
  return {"label": labels[int(np.argmax(probabilities))], "probabilities": dict(zip(labels, p))}


class Encoder:
  """A pretrained workdir's encoder: embeddings of new texts, mean-pooled over their tokens.

  pooling="first" reads the [CLS] position instead; the original arch passes it through BERT's
  pooler (a dense layer and tanh), which only an imported BERT brings (hf.import_workdir keeps
  it): its embed() is then transformers' pooler_output.
  """

  def __init__(self, workdir: str, step: int | None = None, pooling: str = "mean"):
    loaded = workdir_lib.pretrained(workdir, step)  # params alone, no optimizer
    tokenizer = Tokenizer.from_file(os.path.join(workdir, "tokenizer.json"))
    self.model, self.step, self.max_len = loaded.model, loaded.step, loaded.model.max_len
    params = {"encoder": loaded.params["encoder"]}
    if pooling == "first" and loaded.model.arch == "original":
      pooler = workdir_lib.pooler(workdir)
      if pooler is None:
        raise ConfigError(f"{workdir} has no pooler for pooling='first' (pretraining trains "
                          "none; an imported BERT keeps its own): use pooling='mean'")
      params["pooler"] = pooler
    self._runner = Runner(loaded.model, params, tokenizer, self.max_len, pooling, 1)
    self.last_cut = self.last_blank = 0

  @classmethod
  def load(cls, workdir: str, step: int | None = None, pooling: str = "mean") -> "Encoder":
    return cls(workdir, step, pooling)

  def embed(self, texts, text_b=None) -> np.ndarray:
    """float32 [N, hidden]; a row of NaN for a blank text (see `blanks`)."""
    a, b = _texts(texts), None if text_b is None else _texts(text_b)
    out, self.last_cut = self._runner.run("pooled", a, b)
    self.last_blank = int(blanks(a, b).sum())
    return out


def find(path: str, name: str | None = None) -> str:
  """The classifier directory that `path` (a classifier directory, or a workdir and `name`, which
  may be left out when the workdir holds one) names, checked against its workdir."""
  if os.path.isfile(os.path.join(path, "classifier.json")):
    if name:
      raise ConfigError(f"{path} is a classifier directory itself: drop the name {name!r}")
    return path
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} does not exist: give a workdir or a classifier directory")
  held = saved.names(path)
  if name is None:
    if len(held) != 1:
      raise _none_or_many(path, held)
    name = held[0]
  elif name not in held:
    raise ConfigError(f"{path} has no classifier {name!r}; "
                      + (f"its classifiers: {', '.join(held)}" if held else
                         "it holds none yet (" + _holds(path) + ")"))
  directory = saved.directory(path, name)
  with open(os.path.join(directory, "classifier.json")) as f:
    _check_matches(path, directory, json.load(f))
  return directory


def _holds(workdir: str) -> str:
  entries = sorted(e + ("/" if os.path.isdir(os.path.join(workdir, e)) else "")
                   for e in os.listdir(workdir) if not e.startswith("."))
  return "it holds " + (", ".join(entries) if entries else "nothing")


def _none_or_many(workdir: str, held: list[str]) -> ConfigError:
  if held:
    return ConfigError(f"{workdir} holds {len(held)} classifiers ({', '.join(held)}): name one "
                       "with --classifier=NAME (Classifier.load(workdir, name=...))")
  return ConfigError(f"{workdir} holds no classifier ({_holds(workdir)}); fine-tune one with "
                     f"python run.py --mode=finetune --workdir={workdir}")


def _check_matches(workdir: str, directory: str, meta: dict):
  """Refuses a classifier whose workdir has since changed tokenizer or model: its ids and
  weights would still run, but the workdir would no longer say what it is."""
  own = os.path.join(workdir, "tokenizer.json")
  if os.path.exists(own) and files.sha256(own) != meta["tokenizer_sha256"]:
    raise ConfigError(f"{directory} was fine-tuned with another tokenizer than {own}: the workdir "
                      "was trained again since; fine-tune it again, or load the directory itself")
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      model = json.load(f).get("model", {})
    theirs = {k: v for k, v in model.items() if k in meta["model"] and k != "dropout"}
    differing = [k for k, v in theirs.items() if meta["model"][k] != v]
    if differing:
      raise ConfigError(f"{directory} was fine-tuned from another model than {config_path} "
                        f"describes (model.{', model.'.join(differing)}); fine-tune it again, or "
                        "load the directory itself")
