import os
import subprocess
import sys
import tempfile

import pytest

# transformers copies the remote code of crammed exports (trust_remote_code=True) here, not into
# ~/.cache; set before any test imports transformers.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="jaxbert-hf-modules-"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
  """One cache for the whole session (subprocesses inherit it), never ~/.cache: token stores, and
  compiled programs, which run.py keeps there and which tests calling jaxbert directly share."""
  from jaxbert import compile_cache

  path = str(tmp_path_factory.mktemp("cache"))
  os.environ["JAXBERT_CACHE"] = path
  compile_cache.enable()
  return path


def run_py(*args, timeout=300, check=True, env=None, faults=None, stdin=None):
  """Runs `python run.py ARGS` from the repository root (`env` adds variables to the process's
  environment; `faults`, e.g. "kill@save:7", crashes it where tests/faults.py says; `stdin`, text
  fed to it); returns the CompletedProcess."""
  command = ["tests/faults.py", faults] if faults else ["run.py"]
  proc = subprocess.run([sys.executable, *command, *args], cwd=ROOT, capture_output=True,
                        text=True, input=stdin, timeout=timeout,
                        env={**os.environ, **(env or {})})
  if check and proc.returncode != 0:
    raise AssertionError(f"run.py {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
  return proc
