"""What a run recorded, as a card reads it: the workdir's config.json and metrics.jsonl, and the
workdir a saved classifier was fine-tuned in."""

import os

from jaxbert import files


def read_records(workdir: str | None) -> tuple[dict, list[dict]]:
  """(config.json, metrics.jsonl's records) of a workdir; ({}, []) where there is none or it holds
  none. Fields added to jaxbert after the run take their defaults, which kept the old behaviour."""
  from jaxbert import workdir as workdir_lib  # orbax: only when a workdir is read
  from jaxbert.workdir import metrics as metrics_log

  if not workdir or not os.path.isfile(os.path.join(workdir, "config.json")):
    return {}, []
  return workdir_lib.read_config(workdir).to_dict(), metrics_log.read(workdir)


def classifier_workdir(directory: str, meta: dict) -> str | None:
  """The workdir a saved classifier lies in (WORKDIR/classifiers/NAME), if it is the one that
  made it: its tokenizer is the one the classifier was fine-tuned with."""
  parent = os.path.dirname(os.path.abspath(directory))
  workdir = os.path.dirname(parent)
  tokenizer = os.path.join(workdir, "tokenizer.json")
  if os.path.basename(parent) != "classifiers" or not os.path.isfile(tokenizer):
    return None
  return workdir if files.sha256(tokenizer) == meta.get("tokenizer_sha256") else None


def start_record(records: list[dict]) -> dict:
  return next((r for r in records if r["kind"] == "start"), {})


def eval_record(records: list[dict], step: int) -> dict | None:
  """The last held-out record of `step` (--mode=evaluate repeats a step's; the last stands)."""
  return next((r for r in reversed(records) if r["kind"] == "eval" and r["step"] == step), None)


def where(records: list[dict], step: int) -> dict:
  """tokens and elapsed_s at `step`, from its train or eval record ({} if neither has them)."""
  return next((r for r in reversed(records) if r["kind"] in ("train", "eval")
               and r["step"] == step and "tokens" in r and "elapsed_s" in r), {})


def finetune_rows(records: list[dict], meta: dict) -> list[dict]:
  """The "finetune" records of the run that kept the classifier `meta` (classifier.json): its task
  and checkpoint step, and the kept seed's dev score among the pretrained seeds' scores (JSON
  keeps the float exactly). The last match per metric: the latest run, its largest training set.
  """
  seed, dev = meta.get("seed"), meta.get("dev", {})
  rows = {}
  for r in records:
    seeds = r.get("pretrained_seeds") or []
    if (r["kind"] == "finetune" and r.get("task") == meta["task"]
        and r.get("checkpoint_step") == meta["checkpoint_step"] and r.get("metric") in dev
        and isinstance(seed, int) and seed < len(seeds) and seeds[seed] == dev[r["metric"]]):
      rows[r["metric"]] = r
  return [rows[c] for c in dev if c in rows]
