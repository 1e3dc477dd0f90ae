"""The warnings of a plan: what a user would want to know before spending the budget."""

# Past about four epochs repeated tokens are worth markedly less than new ones (Muennighoff et
# al. 2023, "Scaling Data-Constrained Language Models"); below it, repeating costs little.
MAX_EPOCHS = 4.0


def warnings(plan: dict) -> list[str]:
  """One line per problem, each naming the setting to change; [] when there is none."""
  return [w for check in (_memory, _gpu, _epochs, _on_a_gpu, _ramp, _budget_cut) for w in check(plan)]


def _gib(n: float) -> str:
  return f"{n / 2**30:.2f} GiB"


def _memory(plan) -> list[str]:
  m, chosen = plan["memory"], plan["micro_batch"]
  if m["fits"]:
    return []
  if chosen["error"]:
    return [f"the step does not fit: {chosen['error']}"]
  return [f"the step does not fit: train.micro_batch={chosen['rows']} needs {_gib(m['need_bytes'])}"
          f" on {m['backend']}, more than {m['headroom']:.0%} of the {_gib(m['limit_bytes'])} of "
          f"{m['limit_source']}; lower train.micro_batch, or set it to 0 for the most that fit"]


def _gpu(plan) -> list[str]:
  gpu = plan.get("gpu_compile")
  if not gpu:
    return []
  if gpu["error"]:
    return [f"the GPU compile for {gpu['device']} failed: {gpu['error']}"]
  r = gpu["result"]
  if not r.get("micro_batch"):
    return [f"the step does not fit {gpu['device']}: no micro-batch fits its memory; use a "
            "smaller model, or more devices with train.fsdp=true"]
  if r.get("fits") is False:
    return [f"the step does not fit {gpu['device']}: train.micro_batch={r['micro_batch']} needs "
            f"{_gib(r['memory_bytes'])}, over its {_gib(r['limit_bytes'])}; lower "
            "train.micro_batch, or set it to 0 for the most that fit"]
  return []


def _epochs(plan) -> list[str]:
  run, corpus, limit = plan["run"], plan["corpus"], plan["config"]["max_epochs"]
  reads = (f"the run would read the corpus {run['epochs']:.1f} times ({run['tokens'] / 1e6:.1f}M "
           f"tokens drawn from a store of {corpus['tokens'] / 1e6:.2f}M)")
  if limit and run["epochs"] > limit:  # the run measures its rate and stops itself
    return [f"{reads}, over data.max_epochs={limit:g}: it will stop with an error once it has "
            "measured its rate; point data.sources at a larger corpus, shorten budget_hours, or "
            "set data.max_epochs=0 to go on regardless"]
  if limit == 0 or run["epochs"] <= MAX_EPOCHS:  # 0: repeating was chosen, with no limit
    return []
  return [f"{reads}: repeated tokens are worth less past about {MAX_EPOCHS:g} epochs; point "
          "data.sources at a larger corpus, or shorten budget_hours (or train.max_steps)"]


def _on_a_gpu(plan) -> list[str]:
  gpu, limit = plan.get("on_a_gpu"), plan["config"]["max_epochs"]
  most = limit or MAX_EPOCHS
  if not gpu or gpu["epochs"] <= most or plan["run"]["epochs"] > most:  # else _epochs says it
    return []
  return [f"this plan's rate is this CPU's: on an {gpu['device']} at {gpu['assumed_mfu']:.0%} MFU "
          f"({gpu['tokens_per_s'] / 1e3:.0f}k tokens/s) the budget would read the corpus "
          f"{gpu['epochs']:,.0f} times" + (f", over data.max_epochs={limit:g}: the run would stop "
          "in its first minutes" if limit else "") + "; point data.sources at a larger corpus "
          "(parquet:GLOB[:COLUMN]; configs/day.py says how), and plan with --device or "
          "--tokens_per_s"]


def _ramp(plan) -> list[str]:
  run, ramp, c = plan["run"], plan["ramp"], plan["config"]
  short = sum(1 for level in run["levels"] if level["steps"] < 1)
  if run["ends_by"] != "stop_steps":  # stop_steps ends a first part on purpose
    short += len(ramp) - len(run["levels"])
  if len(ramp) < 2 or not short:
    return []
  return [f"the budget is too short for the batch ramp: {short} of its {len(ramp)} levels "
          f"(train.ramp_levels={c['ramp_levels']}, up to train.ramp_until={c['ramp_until']:g}) "
          f"get less than one step, of {run['steps']:,} in all, and each compiles its step "
          f"({run['compile_s']:.0f}s here); lower train.ramp_levels or train.ramp_until, or "
          "raise budget_hours"]


def _budget_cut(plan) -> list[str]:
  run, c = plan["run"], plan["config"]
  if not (c["max_steps"] > 0 and run["ends_by"] == "budget"):
    return []
  return [f"the budget ends the run at step {run['steps']:,} of train.max_steps="
          f"{c['max_steps']:,}: raise budget_hours, or lower train.max_steps"]
