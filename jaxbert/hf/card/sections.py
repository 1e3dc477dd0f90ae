"""The card's Markdown sections, each a list of lines: the model, its pretraining (data, training,
held-out evaluation), a classifier's task and dev scores, how to use it, its limitations."""

from jaxbert.data import sources as sources_lib

from .records import eval_record, start_record
from .sources import Part

ARCHS = {  # what each arch is, for a reader who has not seen jaxbert/model.py
    "crammed": "the crammed BERT of Geiping & Goldstein (ICML 2023): pre-LayerNorm blocks "
               "without biases, a GELU-GLU feed-forward, sinusoidal positions with one learned "
               "scale, the MLM decoder tied to the token embedding",
    "original": "BERT's layout (Devlin et al., 2019): post-LayerNorm blocks with biases, a GELU "
                "feed-forward, learned absolute positions, the MLM decoder tied to the token "
                "embedding",
}
# The models a fine-tuning run scores (tasks/compare.py), as the table heads them and the prose
# describes them; a run with finetune.baselines=False records the first alone.
MODELS = {"pretrained": ("pretrained", "this encoder fine-tuned"),
          "no_pretraining": ("no pretraining", "the same architecture from random init"),
          "cnn": ("CNN", "a small CNN"),
          "bag_of_words": ("bag of words", "a bag-of-words linear model")}


def count(n: int) -> str:
  return f"{n:,}"


def plural(n: int, word: str) -> str:
  return f"{count(n)} {word}" + ("" if n == 1 else "s")


def _data_lines(parts: list[Part]) -> list[str]:
  return [f"- `{p.name}`" + (f": {p.about}" if p.about else "")
          + f"; licence: {p.licence or 'unknown'}" for p in parts]


def model_section(model: dict, lowercase: bool | None, num_params: int) -> list[str]:
  case = {True: ", lowercased", False: ", cased", None: ""}[lowercase]
  return ["## Model", "",
          f"Architecture: {model['arch']}, {ARCHS.get(model['arch'], 'see jaxbert/model.py')}.",
          "", "| | |", "|---|---:|",
          f"| layers | {model['num_layers']} |",
          f"| hidden width | {model['hidden_size']} |",
          f"| attention heads | {model['num_heads']} |",
          f"| feed-forward width | {model['ffn_size']} |",
          f"| vocabulary | {count(model['vocab_size'])} WordPiece tokens{case} |",
          f"| maximum length | {model['max_len']} tokens |",
          f"| parameters | {count(num_params)} |", ""]


# --- pretraining ----------------------------------------------------------------------------

def earlier(start: dict, at: dict) -> str:
  """Where the weights were before this run trained them, when not random init ("" then): the
  figures here count this run only, and what came before is unknown to the card."""
  if at.get("imported_from"):
    return ("The weights were imported from a Hugging Face directory (`--mode=import`) as step "
            "0; what trained them before is not recorded here.")
  if "init_from" in start:
    return (f"The run started from the weights of another run's checkpoint step "
            f"{count(start['init_step'])} (`init_from`); the figures here count this run only.")
  if not start:  # training from random init records its start; an imported workdir has none
    return ("metrics.jsonl holds no start of this run, as for weights imported with "
            "`--mode=import`: where the weights began is not recorded here.")
  return ""


def _rows_line(d: dict, start: dict, at: dict, step: int) -> str:
  rows = (f"{count(start['train_rows'])} training rows of {d['seq_len']} tokens"
          if "train_rows" in start else f"Rows of {d['seq_len']} tokens")
  if "tokens" not in at:
    return f"{rows}; the tokens seen by step {count(step)} are not recorded."
  # Every step reads whole rows of seq_len tokens.
  passes = (f", {at['tokens'] / (start['train_rows'] * d['seq_len']):.3g} epochs over the "
            "training rows" if start.get("train_rows") else "")
  return f"{rows}; {count(at['tokens'])} tokens seen by step {count(step)}{passes}."


def corpus_section(title: str, config: dict, start: dict, at: dict, step: int,
                   parts: list[Part]) -> list[str]:
  """The corpus; `at`: tokens (and where the weights came from) at `step`."""
  d, before = config["data"], earlier(start, at)
  weights = sources_lib.as_list(d.get("weights"))
  lines = [f"## {title}", "",
           f"`data.sources`: `{', '.join(sources_lib.as_list(d['sources']))}`"
           + (f", weighted `{', '.join(weights)}`" if weights else "")
           + "; licences as the SOURCES.md files shipped with the data give them:", "",
           *_data_lines(parts), ""]
  if d.get("max_documents"):
    lines += [f"Only the first {count(d['max_documents'])} documents of each split were read "
              "(`data.max_documents`).", ""]
  lines += [f"{_rows_line(d, start, at, step)} {d['mask_rate']:.0%} of each row's tokens were "
            "masked for prediction.", ""]
  return lines + ([before, ""] if before else [])


def training_section(title: str, config: dict, start: dict, at: dict, step: int) -> list[str]:
  t, o, dtype = config["train"], config["optim"], config["model"].get("dtype")
  limits = [f"{config['budget_hours']:g} hours of wall-clock time"]
  limits += [f"at most {count(t['max_steps'])} steps (`train.max_steps`)"] if t["max_steps"] else []
  trained = f"{count(step)} steps"
  if "elapsed_s" in at:
    s = at["elapsed_s"]
    took = f"{s / 3600:.2f} hours" if s >= 3600 else f"{s / 60:.1f} minutes"
    trained += f" in {took} of budget"
  device = start.get("device_kind") or "unknown (the run did not record its device)"
  return [f"## {title}", "",
          f"- budget: {', '.join(limits)}",
          f"- trained: {trained}",
          f"- optimizer: {o['name']}, {o['schedule']} schedule, peak learning rate "
          f"{o['peak_lr']:g}, batch {count(t['batch_size'])} rows",
          *([f"- compute dtype: {dtype}"] if dtype and dtype != "auto" else []),
          f"- hardware: {device}", ""]


def evaluation_section(title: str, config: dict, record: dict | None, step: int) -> list[str]:
  if record is None:
    return [f"## {title}", "", f"No held-out MLM evaluation is recorded for step {count(step)}.",
            ""]
  rate = config.get("eval", {}).get("mask_rate", config["data"]["mask_rate"])
  return [f"## {title}", "",
          f"Held-out masked-language-model loss and accuracy at step {count(step)}, on "
          f"{count(record['heldout_rows'])} held-out rows of the corpus "
          f"({count(record['predicted_positions'])} predicted tokens, masking {rate:.0%}), beside "
          "a unigram baseline that predicts every masked token from the corpus's token "
          "frequencies alone:", "",
          "| | loss | accuracy | accuracy on replaced tokens |", "|---|---:|---:|---:|",
          f"| this model | {record['mlm_loss']:.4f} | {record['mlm_accuracy']:.2%} | "
          f"{record['replaced_accuracy']:.2%} |",
          f"| unigram baseline | {record['unigram_loss']:.4f} | "
          f"{record['unigram_accuracy']:.2%} | {record['unigram_replaced_accuracy']:.2%} |", ""]


def pretraining_sections(titles: tuple[str, str, str], config: dict, records: list[dict],
                         at: dict, step: int, parts: list[Part]) -> list[str]:
  """Corpus, training and held-out evaluation of checkpoint `step`."""
  start = start_record(records)
  return [*corpus_section(titles[0], config, start, at, step, parts),
          *training_section(titles[1], config, start, at, step),
          *evaluation_section(titles[2], config, eval_record(records, step), step)]


# --- a classifier's task and scores ---------------------------------------------------------

def _train_size(rows: list[dict]) -> str:
  if not rows:
    return "a training set whose size is not recorded (the classifier's workdir was not found)"
  r = rows[0]
  copies = (f" ({count(r['examples'])} with augmented copies)"
            if r.get("examples", r["train_examples"]) != r["train_examples"] else "")
  return (f"{plural(r['train_examples'], 'labelled training example')}{copies}, "
          f"{plural(r['epochs'], 'epoch')}")


def task_section(meta: dict, parts: list[Part], rows: list[dict]) -> list[str]:
  f = meta.get("finetune", {})
  labels = ("regression (one value)" if meta["labels"] == "regression" else
            ", ".join(f"{i} `{c}`" for i, c in enumerate(meta["labels"])))
  texts = "text pairs" if meta.get("pair") else "single texts"
  settings = ", ".join(f"{name} {f[key]:g}" for key, name in (("lr", "learning rate"),
                                                               ("batch_size", "batch"))
                       if isinstance(f.get(key), (int, float)))
  return ["## Task", "",
          f"`{meta['spec']}`: {texts} of at most {meta['max_len']} tokens; labels: {labels}.", "",
          *_data_lines(parts), "",
          f"Fine-tuned from checkpoint step {count(meta['checkpoint_step'])} on "
          f"{_train_size(rows)}" + (f"; {settings}" if settings else "")
          + f"; `{meta['pooling']}` pooling. Kept: {meta.get('kept', 'one seed')}.", ""]


def _scores_intro(rows: list[dict], models: list[str]) -> str:
  if not rows:
    return ("On the task's dev split; what else fine-tuning scored is not recorded (the "
            "classifier's workdir was not found):")
  dev = f" ({plural(rows[0]['dev_examples'], 'example')})" if "dev_examples" in rows[0] else ""
  seeds = len(rows[0].get("pretrained_seeds") or [])
  bow = " (bag of words: one fit)" if "bag_of_words" in models else ""
  return (f"On the task's dev split{dev}: this classifier (the seed kept) beside the models "
          f"fine-tuning trained on the same split, each the median of {plural(seeds, 'seed')}"
          f"{bow}: " + "; ".join(f"{MODELS[m][0]}, {MODELS[m][1]}" for m in models) + ".")


def scores_section(meta: dict, rows: list[dict]) -> list[str]:
  """The kept classifier's dev scores beside the fine-tuning run's medians and baselines."""
  by_metric = {r["metric"]: r for r in rows}
  models = [m for m in MODELS if any(m in r for r in rows)]
  lines = ["## Dev scores", "", _scores_intro(rows, models), "",
           "| metric | this classifier |" + "".join(f" {MODELS[m][0]} |" for m in models),
           "|---|" + "---:|" * (len(models) + 1)]
  for metric, score in meta.get("dev", {}).items():
    row = by_metric.get(metric) or {}
    cells = "".join(f" {row[m]:.4f} |" if isinstance(row.get(m), (int, float)) else " — |"
                    for m in models)
    lines.append(f"| {metric} | {score:.4f} |{cells}")
  return lines + [""]


# --- how to use it, and its limits ----------------------------------------------------------

def _remote(spec: dict, auto: str) -> bool:
  """Whether `auto` loads code from the export (the crammed arch's auto_map) rather than a class
  transformers has (BERT's)."""
  return auto in spec.get("auto_map", {})


def _how_to_use(spec: dict, auto: str, task: str, example: str) -> list[str]:
  """The section's head and its example: `auto` in a transformers pipeline for `task`."""
  args = "path, trust_remote_code=True" if _remote(spec, auto) else "path"
  return ["## How to use", "", "In transformers (PyTorch):", "",
          "```python", f"from transformers import {auto}, AutoTokenizer, pipeline",
          "path = \"path/to/this/directory\"  # or the Hub repository it was uploaded to",
          "tokenizer = AutoTokenizer.from_pretrained(path)",
          f"model = {auto}.from_pretrained({args})",
          f"run = pipeline(\"{task}\", model=model, tokenizer=tokenizer)",
          f"print(run({example}))", "```", ""]


def encoder_use(spec: dict) -> list[str]:
  auto_map = spec.get("auto_map", {})  # what each Auto class gives: the export's config.json
  classes = "; ".join(f"`{auto}` gives `{path.rpartition('.')[2]}`"
                      for auto, path in auto_map.items() if auto != "AutoConfig")
  code = ", ".join(sorted({p.partition(".")[0] + ".py" for p in auto_map.values()}))
  loads = (f"The modeling code is in this directory ({code}), hence `trust_remote_code=True`; "
           f"{classes}." if auto_map else
           f"It loads as transformers' `{spec['architectures'][0]}`.")
  return [*_how_to_use(spec, "AutoModelForMaskedLM", "fill-mask",
                    "f\"the ship sailed across the {tokenizer.mask_token}.\""), loads, "",
          "In jaxbert (JAX): `jaxbert.hf.load(path)` returns the model config, the params and the "
          "tokenizer; `python run.py --mode=import --hf=PATH --workdir=NEW` makes a workdir of it "
          "to evaluate, fine-tune or pretrain further.", ""]


def classifier_use(spec: dict, name: str) -> list[str]:
  auto = "AutoModelForSequenceClassification"
  remote = ("; `trust_remote_code=True` loads the modeling code in this directory"
            if _remote(spec, auto) else "")
  jaxbert_lines = ("In jaxbert (JAX), the saved classifier it was exported from, "
                   f"`WORKDIR/classifiers/{name}`: `jaxbert.Classifier.load(WORKDIR, "
                   f"name=\"{name}\").predict(texts)`, or `python run.py --mode=predict "
                   f"--workdir=WORKDIR --classifier={name} --input=texts.txt`.")
  if spec.get("auto_map"):  # the crammed export keeps its encoder under names hf.load reads
    jaxbert_lines += " `jaxbert.hf.load(path)` reads this directory's encoder (not its head)."
  return [*_how_to_use(spec, auto, "text-classification", "\"a text to label\""),
          f"The labels are config.json's `id2label`{remote}.", "", jaxbert_lines, ""]


def limits_section(what: str, num_params: int, config: dict, at: dict,
                   scored: str) -> list[str]:
  """`scored`: what its scores were measured on."""
  budget = (f", pretrained on a budget of {config['budget_hours']:g} hours"
            if "budget_hours" in config else "")
  seen = f" and {count(at['tokens'])} tokens of text" if budget and "tokens" in at else ""
  return ["## Limitations", "",
          f"- {what} is small: {count(num_params)} parameters{budget}{seen}.",
          "- It knows only its training data (above), with the views, language and period of "
          "those texts; other domains, other languages and recent events are outside it.",
          f"- Its scores are on {scored}.",
          "- Not for production use, or decisions about people, without evaluation on data of "
          "the use in question.", ""]
