"""README.md of an export: its model card, in the form the Hugging Face Hub reads (YAML front
matter, then Markdown), written from what the run recorded.

  encoder(workdir, out, step, meta, num_params)     a pretrained checkpoint's card
  classifier(directory, out, meta, num_params)      a saved classifier's card
  write(out, text)                                  OUT/README.md, written aside and renamed

Every figure comes from the run's own files: the workdir's config.json and metrics.jsonl, the
checkpoint's meta, the classifier's classifier.json, and the config.json the export just wrote
(its class names). A figure they do not hold is left out or said to be unknown. Licences and the
corpus's language come from the SOURCES.md files shipped beside the data.

  sources.py   what was trained on, with the licences and language its SOURCES.md gives it
  records.py   what the run recorded: its config.json, metrics.jsonl, a classifier's workdir
  sections.py  the Markdown sections
"""

import json
import os

from jaxbert import files

from .records import classifier_workdir, finetune_rows, read_records, start_record, where
from .sections import (classifier_use, count, earlier, encoder_use, limits_section,
                       model_section, pretraining_sections, scores_section, task_section)
from .sources import Part, corpus_parts, licence_id, task_parts


def hub_licence(parts: list[Part]) -> dict:
  """The front matter's licence: one identifier when every part has the same known one."""
  ids = {licence_id(p.licence) if p.licence else None for p in parts}
  if not ids or None in ids:
    return {"license": "unknown"}
  if len(ids) == 1 and "public-domain" not in ids:
    return {"license": ids.pop()}
  return {"license": "other", "license_name": "-and-".join(sorted(ids))}


def hub_language(parts: list[Part]) -> dict:
  """The front matter's language: only when every part's SOURCES.md names the same one."""
  langs = {p.lang for p in parts}
  return {"language": [langs.pop()]} if len(langs) == 1 and None not in langs else {}


def _tags(arch: str, task_tag: str) -> list[str]:
  # custom_code: the Hub's mark for models that load with trust_remote_code=True
  return ["jaxbert", task_tag] + (["cramming", "custom_code"] if arch == "crammed" else ["bert"])


def front_matter(pipeline_tag: str, arch: str, data: list[Part], text: list[Part]) -> str:
  """YAML between --- lines: the licence of all `data` the weights learnt from, the language of
  the `text` they were pretrained on. Each scalar is written as a JSON string or number, which
  YAML reads as the same value, so writing needs no YAML library."""
  fields = {"library_name": "transformers", "pipeline_tag": pipeline_tag, **hub_licence(data),
            **hub_language(text), "tags": _tags(arch, pipeline_tag)}
  lines = [f"{key}:\n" + "\n".join(f"- {json.dumps(v)}" for v in value)
           if isinstance(value, list) else f"{key}: {json.dumps(value)}"
           for key, value in fields.items()]
  return "\n".join(["---", *lines, "---", ""])


def trained_on(parts: list[Part], start: dict, at: dict) -> list[Part]:
  """The data behind the weights: this run's corpus, and before it, if anything, unknown data."""
  return parts + ([Part("the data of the weights' earlier training")] if earlier(start, at)
                  else [])


def _read_spec(out: str) -> dict:
  """The config.json the export wrote: the class names and auto_map the card tells to load."""
  with open(os.path.join(out, "config.json")) as f:
    return json.load(f)


def encoder(workdir: str, out: str, step: int, meta: dict, num_params: int) -> str:
  """The card of a workdir's checkpoint `step` (`meta`: what the checkpoint recorded: tokens,
  elapsed_s), exported to `out`, whose config.json says how it loads."""
  config, records = read_records(workdir)
  parts, model = corpus_parts(config["data"]["sources"]), config["model"]
  behind = trained_on(parts, start_record(records), meta)
  return "\n".join([
      front_matter("fill-mask", model["arch"], behind, behind),
      f"# jaxbert {model['arch']} masked language model", "",
      "A small BERT-style encoder pretrained with jaxbert by masked-language modelling: "
      f"checkpoint step {count(step)} of its run.", "",
      *model_section(model, config["data"].get("lowercase"), num_params),
      *pretraining_sections(("Training data", "Training", "Evaluation"), config, records, meta,
                            step, parts),
      *encoder_use(_read_spec(out)),
      *limits_section("The model", num_params, config, meta,
                      "held-out rows of its own corpus, not on a public benchmark")])


def classifier(directory: str, out: str, meta: dict, num_params: int) -> str:
  """The card of the saved classifier `directory` (`meta`: its classifier.json) exported to `out`;
  its pretraining is read from the workdir it lies in, when that is the one that made it."""
  config, records = read_records(classifier_workdir(directory, meta))
  task = task_parts(meta["spec"])
  pretraining = (corpus_parts(config["data"]["sources"]) if config
                 else [Part("the pretraining corpus")])  # unknown: so is the card's licence
  rows, model, step = finetune_rows(records, meta), meta["model"], meta["checkpoint_step"]
  at = where(records, step)
  behind = trained_on(pretraining, start_record(records), at)
  base = (pretraining_sections(("Pretraining data", "Pretraining", "Pretraining evaluation"),
                               config, records, at, step, pretraining) if config else
          ["## Pretraining", "", "Not recorded: the workdir the classifier was fine-tuned in was "
           "not found around it.", ""])
  return "\n".join([
      front_matter("text-classification", model["arch"], behind + task, behind),
      f"# jaxbert {model['arch']} classifier: {meta['task']}", "",
      "A small BERT-style encoder pretrained with jaxbert by masked-language modelling, then "
      f"fine-tuned to classify texts for the task `{meta['task']}`.", "",
      *task_section(meta, task, rows), *scores_section(meta, rows),
      *model_section(model, meta.get("lowercase"), num_params), *base,
      *classifier_use(_read_spec(out), os.path.basename(os.path.abspath(directory))),
      *limits_section("The classifier", num_params, config, at, "the dev split of its task, "
                      "not on texts from other sources, which may score otherwise")])


def write(out: str, text: str) -> str:
  """Writes OUT/README.md aside and renames it, so no half card is ever under the name."""
  path = os.path.join(out, "README.md")
  files.write_text(path, text)
  return path
