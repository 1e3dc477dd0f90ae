"""Recipes side by side: which one gives the lowest held-out MLM loss for the same wall clock.

  python benchmarks/speedrun.py --config=configs/quick.py --out=OUT \
      --arm="base" --arm="lr2e-3 optim.peak_lr=2e-3" [--seeds=2] [--mode=steps|clock]

Each --arm is a name, then overrides of the base config (KEY=VALUE, split on spaces). Every arm
pretrains from the same token store (no fine-tuning), seeds 0..N-1, with held-out points on the
way (eval.*: the same rows and positions at the fixed eval.mask_rate for every arm).

--mode=clock runs each arm for the config's budget of wall-clock time, alternately (A B A B ...),
so that the machine's noise hits every arm alike. --mode=steps (the default) takes the noise out
of the curves: it first measures each arm's steps per second side by side (runs of
`--speed_steps`, alternated, `--speed_repeats` of them, on a quiet machine; arms whose overrides
cannot change the work of a step share the base's figure), then runs each arm step-bound for the steps its speed gives in the
budget (train.max_steps, so its schedule spans the same share of the run). Those runs are
deterministic, so `--parallel=2` may run two at once, each on its own core; their minutes are
converted from steps at the measured speed. Compile time is not counted in steps mode.

Writes OUT/speedrun.json (every arm's held-out curve per seed, speed and summary), OUT/speedrun.md
(the table) and OUT/speedrun.png (held-out loss against minutes for every arm); results of another
set of arms found there are first moved to OUT/speedrun.N.*.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Overrides that cannot change how long a step takes: the same work on other numbers.
SPEED_NEUTRAL = ("seed", "optim.peak_lr", "optim.schedule", "optim.warmup", "optim.decay",
                 "optim.b1", "optim.b2", "optim.eps", "optim.weight_decay", "optim.clip_norm",
                 "model.init_std", "model.residual_init_std", "model.embedding_init_std",
                 "model.position_init", "model.position_learned", "data.order")
THRESHOLDS = (5.5, 4.5, 4.0)


def parse_arm(text: str) -> dict:
  name, *overrides = shlex.split(text)
  for o in overrides:
    if "=" not in o:
      raise SystemExit(f"--arm={text!r}: {o!r} is not KEY=VALUE")
  return {"name": name, "overrides": overrides}


def neutral(arm: dict) -> bool:
  return all(o.split("=", 1)[0] in SPEED_NEUTRAL for o in arm["overrides"])


def run(args, arm, workdir, seed, extra, core=None) -> subprocess.Popen:
  """Starts run.py for one arm and seed; its output goes to WORKDIR.log."""
  cmd = [sys.executable, os.path.join(ROOT, "run.py"), f"--config={args.config}",
         f"--workdir={workdir}", f"--config.seed={seed}",
         "--config.finetune.after_training=False"]
  cmd += [f"--config.{o}" for o in extra + arm["overrides"]]
  if core is not None:
    cmd = ["taskset", "-c", str(core)] + cmd
  os.makedirs(os.path.dirname(workdir), exist_ok=True)
  log = open(workdir + ".log", "w")
  return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait(proc: subprocess.Popen, workdir: str):
  if proc.wait() != 0:
    with open(workdir + ".log") as f:
      tail = f.read()[-2000:]
    raise SystemExit(f"{workdir} failed (exit {proc.returncode}):\n{tail}")


def records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def prepare(args, arms):
  """Builds each token store the arms read, one at a time, before any run starts: runs started
  together would each train a tokenizer for the same store."""
  stores = {tuple(o for o in a["overrides"] if o.startswith(("data.", "model.vocab_size")))
            for a in arms}
  for overrides in sorted(stores):
    cmd = [sys.executable, os.path.join(ROOT, "run.py"), "--mode=prepare",
           f"--config={args.config}", *(f"--config.{o}" for o in overrides)]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def speeds(args, arms, known: dict) -> dict:
  """Steps per second of each arm at the full batch: short runs, alternated. Arms whose
  overrides cannot change a step's work take the base's (arms[0]) figure; `known` arms keep theirs.
  """
  base = arms[0]["name"]
  todo = [a for a in arms if a["name"] not in known and (a is arms[0] or not neutral(a))]
  measured = {}
  for repeat in range(args.speed_repeats):
    for arm in todo:
      workdir = os.path.join(args.out, "speed", f"{arm['name']}-{repeat}")
      # Step-bound, so that however long compiling takes the same steps are timed.
      extra = ["budget_hours=1000", f"train.max_steps={args.speed_steps}",
               "train.stop_steps=0", "eval.every_minutes=0",
               "eval.every_steps=0", f"train.log_every={args.speed_log_every}",
               "train.checkpoint_minutes=1000"]
      wait(run(args, arm, workdir, 0, extra), workdir)
      train = [r for r in records(workdir) if r["kind"] == "train"]
      rates = [r["tokens_per_s"] / (r["batch_rows"] * seq_len(workdir)) for r in train[1:-1]]
      if not rates:
        raise SystemExit(f"{workdir}: too few train lines to time; raise --speed_steps or "
                         "lower --speed_log_every")
      measured.setdefault(arm["name"], []).extend(rates)
  out = dict(known)
  for name, rates in measured.items():
    out[name] = {"steps_per_s": float(np.median(rates)), "measured_as": name,
                 "samples": len(rates)}
  for arm in arms:
    if arm["name"] not in out:
      out[arm["name"]] = {**out[base], "measured_as": base}
  return out


def seq_len(workdir: str) -> int:
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)["data"]["seq_len"]


def curves(args, arms, budget_min, speed) -> dict:
  """Every arm's held-out curve per seed: [(minutes, tokens, loss)], and its train records."""
  jobs = []
  for seed in range(args.seeds):  # A B A B: each seed runs every arm before the next seed
    for arm in arms:
      workdir = os.path.join(args.out, arm["name"], f"seed{seed}")
      if args.mode == "steps":
        steps = int(round(speed[arm["name"]]["steps_per_s"] * budget_min * 60))
        stop = int(round(steps * args.stop_fraction))
        extra = [f"train.max_steps={steps}", f"train.stop_steps={stop}", "budget_hours=1000",
                 f"eval.every_steps={max(1, steps // args.points)}", "eval.every_minutes=0"]
      else:
        extra = [f"budget_hours={budget_min / 60}", "eval.every_steps=0",
                 f"eval.every_minutes={budget_min / args.points}"]
      jobs.append((arm, seed, workdir, extra, stop if args.mode == "steps" else None))
  running, out = [], {}
  cores = list(range(args.parallel)) if args.parallel > 1 else [None]
  for arm, seed, workdir, extra, stop in jobs:
    if _finished(workdir, stop):  # a rerun keeps what is done, and continues a shorter part
      print(f"{workdir}: done before, kept", flush=True)
    else:
      while len(running) >= len(cores):
        running = _reap(running)
      free = [c for c in cores if c not in [r[2] for r in running]][0]
      print(f"{time.strftime('%H:%M:%S')} {arm['name']} seed {seed}", flush=True)
      running.append((run(args, arm, workdir, seed, extra, free), workdir, free))
  while running:
    running = _reap(running)
  for arm, seed, workdir, _, stop in jobs:
    # A run taken further before is read to the part asked for, so every arm's figures come
    # from the same steps.
    recs = [r for r in records(workdir) if stop is None or r["step"] <= stop]
    sps = speed[arm["name"]]["steps_per_s"] if speed else None
    minutes = (lambda r: r["step"] / sps / 60) if args.mode == "steps" else \
              (lambda r: r["elapsed_s"] / 60)
    evals = [r for r in recs if r["kind"] == "eval"]
    train = [r for r in recs if r["kind"] == "train"]
    if not evals:
      raise SystemExit(f"{workdir}: no held-out point by step {stop}; ask for a larger "
                       "--stop_fraction")
    out.setdefault(arm["name"], []).append({
        "seed": seed, "workdir": os.path.relpath(workdir, args.out),
        "heldout": [(minutes(r), r["tokens"], r["step"], r["mlm_loss"]) for r in evals],
        "train": [(minutes(r), r["step"], r["loss"]) for r in train],
        "steps": evals[-1]["step"], "tokens": evals[-1]["tokens"],
        "unigram_loss": evals[-1]["unigram_loss"]})
  return out


def _finished(workdir: str, stop: int | None) -> bool:
  """Whether the run has ended with its final evaluation (at step `stop` or later, when given:
  a run taken further before is kept, not wound back)."""
  if not os.path.exists(workdir + ".log"):
    return False
  with open(workdir + ".log") as f:
    ended = "held-out MLM on" in f.read()  # the final evaluation's heading
  return ended and (stop is None or any(r["kind"] == "eval" and r["step"] >= stop
                                        for r in records(workdir)))


def _reap(running):
  time.sleep(1)
  still = []
  for proc, workdir, core in running:
    if proc.poll() is None:
      still.append((proc, workdir, core))
    else:
      wait(proc, workdir)
  return still


def first_below(points, threshold, x=0):
  """The x (minutes or tokens) where a curve first reaches `threshold`, interpolated; None."""
  for (x0, y0), (x1, y1) in zip(points, points[1:]):
    if y1 <= threshold < y0:
      return x0 + (x1 - x0) * (y0 - threshold) / (y0 - y1)
  if points and points[0][1] <= threshold:
    return points[0][0]
  return None


def at(points, x):
  """The curve's loss at x, interpolated linearly (None past its end)."""
  xs, ys = zip(*points)
  return float(np.interp(x, xs, ys)) if xs[0] <= x <= xs[-1] else None


def summarise(arms, runs, budget_min) -> list[dict]:
  common_tokens = min(s["tokens"] for a in arms for s in runs[a["name"]])
  rows = []
  for arm in arms:
    seeds = runs[arm["name"]]
    med = lambda xs: None if any(x is None for x in xs) else float(np.median(xs))
    row = {"arm": arm["name"], "overrides": " ".join(arm["overrides"]),
           "loss_at_budget": med([s["heldout"][-1][3] for s in seeds]),
           "loss_per_seed": [s["heldout"][-1][3] for s in seeds],
           "loss_at_tokens": med([at([(h[1], h[3]) for h in s["heldout"]], common_tokens)
                                  for s in seeds]),
           "common_tokens": common_tokens, "steps": med([s["steps"] for s in seeds]),
           # The first train line under 5.5, as a share of the budget: how long the plateau is.
           "train_below_5.5": med([first_below([(t[0], t[2]) for t in s["train"]], 5.5)
                                   for s in seeds])}
    if row["train_below_5.5"] is not None:
      row["train_below_5.5"] /= budget_min
    for threshold in THRESHOLDS:
      row[f"minutes_to_{threshold}"] = med(
          [first_below([(h[0], h[3]) for h in s["heldout"]], threshold) for s in seeds])
    rows.append(row)
  return rows


def table(rows, speed, mode) -> str:
  head = ("| arm | overrides | steps/s | steps | held-out at budget | at equal tokens | "
          + " | ".join(f"min to {t}" for t in THRESHOLDS) + " | train < 5.5 at |")
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  f = lambda x, p=3: "—" if x is None else f"{x:.{p}f}"
  for r in rows:
    sps = speed[r["arm"]]["steps_per_s"] if speed else None
    plateau = r["train_below_5.5"]
    lines.append(f"| {r['arm']} | {r['overrides'] or '(base)'} | {f(sps, 1)} | "
                 f"{f(r['steps'], 0)} | {f(r['loss_at_budget'])} "
                 f"({', '.join(f(x) for x in r['loss_per_seed'])}) | {f(r['loss_at_tokens'])} | "
                 + " | ".join(f(r[f"minutes_to_{t}"], 1) for t in THRESHOLDS)
                 + f" | {'—' if plateau is None else f'{plateau:.0%}'} |")
  note = ("Minutes are converted from steps at each arm's measured steps/s (equal-step runs, "
          "deterministic)." if mode == "steps" else "Minutes are wall-clock budget minutes.")
  return "\n".join(lines) + "\n\n" + note + (
      f" Held-out at equal tokens: at {rows[0]['common_tokens'] / 1e6:.1f}M tokens, the fewest "
      "any run saw. Each value is the median of the seeds.\n")


def plot(arms, runs, path):
  from jaxbert import plots

  with plots.figure(path, figsize=(8, 5), dpi=90) as (fig, ax):
    for i, arm in enumerate(arms):
      for j, s in enumerate(runs[arm["name"]]):
        xs, ys = [h[0] for h in s["heldout"]], [h[3] for h in s["heldout"]]
        ax.plot(xs, ys, "o-" if i < 10 else "s--", ms=3, lw=1, color=f"C{i % 10}",
                label=arm["name"] if j == 0 else None)
    unigram = runs[arms[0]["name"]][0]["unigram_loss"]
    ax.axhline(unigram, color="gray", ls=":", label="unigram baseline")
    ax.set(xlabel="minutes of budget", ylabel="held-out MLM loss", ylim=(None, unigram + 0.3))
    ax.legend(fontsize=8)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="configs/quick.py")
  p.add_argument("--arm", action="append", required=True, help="NAME [KEY=VALUE ...]")
  p.add_argument("--out", required=True)
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--mode", choices=("steps", "clock"), default="steps")
  p.add_argument("--budget_minutes", type=float, default=0,
                 help="the budget of every arm (0 = the config's budget_hours)")
  p.add_argument("--points", type=int, default=10, help="held-out points per run")
  p.add_argument("--parallel", type=int, default=1,
                 help="steps mode: runs at once, each pinned to its own core")
  p.add_argument("--stop_fraction", type=float, default=1.0,
                 help="steps mode: stop each run at this share of its steps (its schedule still "
                      "spans them all); rerun with a larger share to continue the same runs")
  p.add_argument("--speed_steps", type=int, default=1500,
                 help="steps mode: steps of each speed run (the first train line is not timed)")
  p.add_argument("--speed_repeats", type=int, default=2)
  p.add_argument("--speed_log_every", type=int, default=100)
  args = p.parse_args(argv)
  arms = [parse_arm(a) for a in args.arm]
  if len({a["name"] for a in arms}) != len(arms):
    raise SystemExit("--arm names must differ")
  if args.mode == "clock" and args.parallel > 1:
    raise SystemExit("--parallel needs --mode=steps: clock runs must not share the machine")
  from jaxbert import files  # here, not at the top: fails early on a broken install
  budget_min = args.budget_minutes or _config_budget(args.config) * 60
  os.makedirs(args.out, exist_ok=True)
  prepare(args, arms)
  speed = {}
  if args.mode == "steps":  # measured once: a rerun (a larger --stop_fraction) reuses it
    path = os.path.join(args.out, "speed.json")
    known = json.load(open(path)) if os.path.exists(path) else {}
    if any(a["name"] not in known for a in arms):
      known = speeds(args, arms, known)
      files.write_json(path, known)
    speed = {a["name"]: known[a["name"]] for a in arms}
  runs = curves(args, arms, budget_min, speed)
  rows = summarise(arms, runs, budget_min)
  result = {"config": args.config, "mode": args.mode, "budget_minutes": budget_min,
            "stop_fraction": args.stop_fraction,
            "seeds": args.seeds, "arms": arms, "speed": speed, "runs": runs, "summary": rows}
  text = table(rows, speed, args.mode)
  _keep_other_results(args.out, arms)
  files.write_json(os.path.join(args.out, "speedrun.json"), result)
  files.write_text(os.path.join(args.out, "speedrun.md"), text)
  plot(arms, runs, os.path.join(args.out, "speedrun.png"))
  print(text)
  return result


def _keep_other_results(out: str, arms):
  """Moves aside results of another set of arms (speedrun.N.*), so a call with fewer or other arms
  (continuing one of them, say) does not overwrite a table it did not make."""
  path = os.path.join(out, "speedrun.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    before = [a["name"] for a in json.load(f)["arms"]]
  if before == [a["name"] for a in arms]:
    return
  n = 1
  while os.path.exists(os.path.join(out, f"speedrun.{n}.json")):
    n += 1
  for ext in ("json", "md", "png"):
    if os.path.exists(os.path.join(out, f"speedrun.{ext}")):
      os.replace(os.path.join(out, f"speedrun.{ext}"), os.path.join(out, f"speedrun.{n}.{ext}"))
  print(f"the results of arms {', '.join(before)} are kept as {out}/speedrun.{n}.*", flush=True)


def _config_budget(path: str) -> float:
  import importlib.util

  spec = importlib.util.spec_from_file_location("speedrun_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config().budget_hours


if __name__ == "__main__":
  main()
