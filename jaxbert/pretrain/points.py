"""The held-out record of a run: when its points fall, what each records, and its last step's.

Points fall every eval.every_steps steps and every eval.every_minutes of budget, the minute marks
being multiples of the period so that a resumed run keeps them. Each point scores the params the
run would keep (optim.eval_params) on evaluate.Heldout's fixed sample, and records where the run
stood: step, tokens seen, budget spent and progress. The last step is recorded once; a finished
run rerun reports that record again, and evaluating its checkpoint repeats it (checkpoint()).
"""

import jax

from jaxbert import checkpoint as checkpoint_lib
from jaxbert import cpu, optim
from jaxbert import workdir as workdir_lib
from jaxbert.model import MaskedLM
from jaxbert.workdir import metrics as metrics_log
from jaxbert.workdir import report

from . import evaluate, parallel
from . import state as state_lib


class Points:
  """When the held-out points fall, from `elapsed_s` of budget on."""

  def __init__(self, eval_config, elapsed_s: float):
    self.steps, self.period = eval_config.every_steps, eval_config.every_minutes * 60
    self.done(elapsed_s)

  def done(self, elapsed_s: float):
    self.next_s = self.period * (elapsed_s // self.period + 1) if self.period > 0 else float("inf")

  def due(self, step: int, elapsed_s: float) -> bool:
    return (self.steps > 0 and step % self.steps == 0) or elapsed_s >= self.next_s


def where(config, meta: dict) -> dict:
  """tokens, elapsed_s and progress of a checkpoint's (or a step's) meta."""
  return {"tokens": meta["tokens"], "elapsed_s": meta["elapsed_s"],
          "progress": optim.progress(config, meta["step"], meta["elapsed_s"])}


def record(heldout, config, state, step: int, at: dict) -> dict | None:
  """The eval record of `state` at `step` (`at`: where()); None on all but the first process,
  which scores it (the params are gathered whole on every process first)."""
  params = parallel.gather(optim.eval_params(config.optim, state))
  if jax.process_index() > 0:
    return None
  return {"kind": "eval", "step": step, **at, **heldout(params)}


def final(config, workdir, heldout, state, step: int, at: dict) -> dict:
  """Held-out metrics of the last step, recorded once, printed, and the report written.
  `heldout` None: the store holds no rows out (task: sources), so there is nothing to score."""
  primary = jax.process_index() == 0
  if heldout is None:
    if primary:
      print(f"no held-out MLM: data.sources={config.data.sources!r} holds no rows out (a task: "
            "source keeps its dev rows unseen); score the model by fine-tuning it", flush=True)
      print(f"report: {report.write(workdir)}", flush=True)
    return {}
  before = [r for r in metrics_log.read(workdir) if r["kind"] == "eval" and r["step"] == step]
  if before:
    results = before[-1]
  else:
    results = record(heldout, config, state, step, at)
    if not primary:
      return {}
    with metrics_log.Records(workdir, primary, step) as records:
      records.write(results)
  results = {k: v for k, v in results.items() if k not in ("kind", "step")}
  if primary:
    print(evaluate.format_mlm(results), flush=True)
    print(f"report: {report.write(workdir)}", flush=True)
  return results


def checkpoint(workdir: str, step: int | None = None) -> dict:
  """Held-out MLM of a workdir's checkpoint (latest by default), printed and recorded where the
  checkpoint stands: the same record its run wrote for that step."""
  saved = workdir_lib.pretrained(workdir, step)  # the params alone: no optimizer is built
  store = workdir_lib.token_store(saved.config, workdir)
  workdir_lib.check_tokenizer(workdir, store.tokenizer_path)
  heldout = evaluate.Heldout(MaskedLM(cpu.tuned(saved.model)), store, saved.config)
  results = heldout(_kept_params(workdir, saved))
  metrics_log.write(workdir, {"kind": "eval", "step": saved.step,
                              **where(saved.config, saved.meta), **results})
  print(f"checkpoint step {saved.step} of {workdir}")
  print(evaluate.format_mlm(results), flush=True)
  return results


def _kept_params(workdir: str, saved) -> dict:
  """The params the run scored: the state's, or for schedule-free AdamW the average that
  optim.eval_params reads from the optimizer state, which is then restored too."""
  if saved.config.optim.name != "schedule_free":
    return saved.params
  _, _, init = state_lib.build(saved.config)
  with checkpoint_lib.Checkpoints(workdir, writer=False) as ckpts:
    state, _ = ckpts.restore(saved.step, jax.eval_shape(init, state_lib.init_key(saved.config)))
  return optim.eval_params(saved.config.optim, state)
