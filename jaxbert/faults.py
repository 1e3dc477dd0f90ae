"""Fault injection for the robustness tests: a crash or a bad batch exactly where a test wants it.

A run reads JAXBERT_FAULTS, a comma-separated list of `WHAT@N`:

  kill@step:N    SIGKILL this process while step N is being computed
  kill@save:N    SIGKILL it while the checkpoint of step N is being written
  kill@eval:N    SIGKILL it during the final evaluation at step N
  nan@batch:N    make the N-th micro-batch drawn from the data (0-based, counted over the whole
                 run, resumes included) produce a non-finite loss

Timing a kill from outside can only say "somewhere around here"; these say exactly where, so the
tests can claim what they test. Unset (always, outside the tests), every check is a dict lookup.
"""

import os
import signal


def _parse(spec: str) -> dict[str, set[int]]:
  faults = {}
  for item in filter(None, (s.strip() for s in spec.split(","))):
    name, _, n = item.partition(":")
    if not n.isdigit() or name not in ("kill@step", "kill@save", "kill@eval", "nan@batch"):
      raise ValueError(f"JAXBERT_FAULTS: cannot read {item!r} (expected e.g. kill@save:3)")
    faults.setdefault(name, set()).add(int(n))
  return faults


def _active(name: str, n: int) -> bool:
  spec = os.environ.get("JAXBERT_FAULTS")
  return bool(spec) and n in _parse(spec).get(name, ())


def maybe_kill(where: str, step: int):
  """SIGKILLs this process if the test asked for a kill at `where` ("step", "save", "eval")."""
  if _active(f"kill@{where}", step):
    os.kill(os.getpid(), signal.SIGKILL)


def poisoned(batch_index: int) -> bool:
  """Whether the micro-batch with this 0-based index in the run's data stream is to be poisoned."""
  return _active("nan@batch", batch_index)
