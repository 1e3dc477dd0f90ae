"""Runs run.py with a crash exactly where a robustness test wants it: `python tests/faults.py
FAULTS ARGS...` is `python run.py ARGS...` with FAULTS, a comma-separated list of

  kill@step:N    SIGKILL the process right after step N is dispatched, while it computes
  kill@save:N    SIGKILL it while the checkpoint of step N is being written (the save is async)
  kill@eval:N    SIGKILL it once the final evaluation at step N is computed, before it is recorded

Timing a kill from outside can only say "somewhere around here"; these say exactly where. The
faults wrap the functions the training loop calls (the jitted step, Checkpoints.save and
the held-out scorer, evaluate.Heldout); production code holds no hook for them.
"""

import os
import runpy
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(spec: str) -> dict[str, set[int]]:
  faults = {}
  for item in filter(None, (s.strip() for s in spec.split(","))):
    name, _, n = item.partition(":")
    if not n.isdigit() or name not in ("kill@step", "kill@save", "kill@eval"):
      raise SystemExit(f"tests/faults.py: cannot read {item!r} (expected e.g. kill@save:3)")
    faults.setdefault(name, set()).add(int(n))
  return faults


def die():
  os.kill(os.getpid(), signal.SIGKILL)


class _KillingStep:
  """The jitted train step, killing the process after dispatching the step that makes step N."""

  def __init__(self, step, at):
    self.step, self.at = step, at

  def __call__(self, state, *args):
    number = int(state.step) + 1  # read before the call: the step donates its state
    out = self.step(state, *args)
    if number in self.at:
      die()
    return out

  def __getattr__(self, name):  # .lower for the micro-batch search
    return getattr(self.step, name)


def install(faults: dict[str, set[int]]):
  from jaxbert import checkpoint
  from jaxbert.pretrain import evaluate, points, step

  if "kill@step" in faults:
    make = step.make_train_step
    step.make_train_step = lambda *a, **k: _KillingStep(make(*a, **k), faults["kill@step"])
  if "kill@save" in faults:
    save = checkpoint.Checkpoints.save

    def killing_save(self, number, *args, **kwargs):
      save(self, number, *args, **kwargs)
      if number in faults["kill@save"]:
        die()

    checkpoint.Checkpoints.save = killing_save
  if "kill@eval" in faults:
    final, score, at = points.final, evaluate.Heldout.__call__, []

    def final_evaluation(config, workdir, heldout, state, number, *args):
      at.append(number)
      return final(config, workdir, heldout, state, number, *args)

    def killing_score(self, params):
      results = score(self, params)
      if at and at[-1] in faults["kill@eval"]:
        die()
      return results

    points.final, evaluate.Heldout.__call__ = final_evaluation, killing_score

if __name__ == "__main__":
  faults = parse(sys.argv[1])
  sys.argv = ["run.py", *sys.argv[2:]]
  sys.path.insert(0, ROOT)
  install(faults)
  runpy.run_path(os.path.join(ROOT, "run.py"), run_name="__main__")
