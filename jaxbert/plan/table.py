"""The plan as a person reads it: one labelled line per figure, the ramp's levels, the warnings."""

WIDTH = 16  # of the label column


def _duration(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  return f"{seconds // 60}m{seconds % 60:02d}s"


def _bytes(n: float) -> str:
  for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= size:
      return f"{n / size:.2f} {unit}"
  return f"{int(n)} B"


def _si(n: float) -> str:
  for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(n) >= size:
      return f"{n / size:.2f}{unit}"
  return f"{n:.1f}"


def _steps(n: float) -> str:
  """A level's steps: budget-bound, a share of a step where a step outlasts its span of t."""
  return f"{int(n):,}" if n >= 10 or n == int(n) else f"{n:.1f}"


def _line(label: str, text: str) -> str:
  return f"{label:<{WIDTH}}{text}"


def _model(plan) -> list[str]:
  c, p, m = plan["config"], plan["params"], plan["machine"]
  return [
      _line("model", f"{c['arch']}, {c['num_layers']} layers of width {c['hidden_size']}, vocab "
            f"{c['vocab_size']:,}, rows of {c['seq_len']} tokens, {c['dtype']} on "
            f"{m['devices']} {m['backend']} device(s) ({m['device_kind']})"),
      _line("parameters", f"{p['total']:,}"),
      _line("  embeddings", f"{p['embeddings']:,}"),
      _line("  encoder", f"{p['encoder_layers']:,} in {c['num_layers']} layers"),
      _line("  head", f"{p['head']:,} (final norm and head; the decoder is the tied embedding)"),
      _line("FLOPs/token", f"{_si(plan['flops_per_token'])} forward+backward, the sparse head "
            f"predicting {plan['predicted_per_row']} of {c['seq_len']} positions"),
  ]


def _memory(plan) -> list[str]:
  chosen, m = plan["micro_batch"], plan["memory"]
  rows = _line("micro-batch", f"{chosen['rows']} rows, by {chosen['by']}" + (
      f" in {chosen['seconds']:.0f}s of compiling (on the budget's clock)"
      if chosen["seconds"] else ""))
  where = (f"XLA's analysis on {m['backend']}"
           + (": the CPU's figure, not a GPU estimate" if m["backend"] == "cpu" else ""))
  parts = (f"; arguments {_bytes(m['argument_bytes'])}, outputs {_bytes(m['output_bytes'])} "
           f"({_bytes(m['alias_bytes'])} donated back), temporaries {_bytes(m['temp_bytes'])}"
           if "temp_bytes" in m else "")
  need = ("unknown: " + chosen["error"] if m["need_bytes"] is None else
          f"{_bytes(m['need_bytes'])} at {chosen['rows']} rows ({where}){parts}")
  limit = (f"{'fits' if m['fits'] else 'DOES NOT FIT'} in {m['headroom']:.0%} of "
           f"{_bytes(m['limit_bytes'])}, {m['limit_source']}")
  return [rows, _line("step memory", need), _line("", limit)]


def _gpu(plan) -> list[str]:
  gpu = plan.get("gpu_compile")
  if gpu is None:
    return []
  if gpu.get("error"):
    return [_line("GPU compile", f"{gpu['device']}: failed: {gpu['error']}")]
  r = gpu["result"]
  limit = f" of {_bytes(r['limit_bytes'])}" if r.get("limit_bytes") else ""
  return [_line("GPU compile", f"{r.get('device', gpu['device'])}: micro-batch "
                f"{r.get('micro_batch')} rows, {_bytes(r.get('memory_bytes') or 0)}{limit} by "
                "XLA's analysis of the step compiled for it (a lower bound: nothing autotuned)")]


def _ramp(plan) -> list[str]:
  run = plan["run"]
  steps = {level["micro_batches"]: level for level in run["levels"]}
  lines = [_line("batch ramp", f"{len(plan['ramp'])} level(s), so {plan['shapes']} step shape(s) "
                 f"compile ({run['compile_s']:.1f}s each here, on the budget's clock)")]
  for level in plan["ramp"]:
    got = steps.get(level["micro_batches"])
    lines.append(_line("", f"t {level['from_t']:.2f}-{level['to_t']:.2f}: "
                       f"{level['micro_batches']} x {plan['run']['micro_batch']} rows = "
                       f"{level['tokens_per_step']:,} tokens/step"
                       + (f", {_steps(got['steps'])} steps in {_duration(got['seconds'])}" if got
                          else ", not reached")))
  return lines


def _throughput(plan) -> list[str]:
  t = plan["throughput"]
  if t.get("assumed_mfu"):
    text = (f"{_si(t['tokens_per_s'])} tokens/s, assumed: {t['assumed_mfu']:.0%} of the device's "
            "bf16 peak (--tokens_per_s gives a measured rate)")
  elif t["source"] == "given":
    text = f"{_si(t['tokens_per_s'])} tokens/s, as given"
  else:
    text = (f"{_si(t['tokens_per_s'])} tokens/s ({t['steps_per_s']:.2f} steps/s of "
            f"{t['rows']} rows), measured on this {t['backend']} over {t['steps']} steps in "
            f"{t['seconds']:.1f}s from a fresh init (compile {t['compile_s']:.1f}s, not counted)")
    if t["lower_bound"]:
      text += ("; fewer rows than the run's, so a lower bound: its larger steps spread the "
               "optimizer's update over more tokens")
  lines = [_line("throughput", text)]
  if t.get("mfu") is not None:
    lines.append(_line("", f"MFU {t['mfu']:.1%} of {t['mfu_device']}'s peak"))
  return lines


def _corpus(plan) -> list[str]:
  c = plan["corpus"]
  how = ("found in the cache" if c["cached"] else f"prepared now in {_duration(c['prepare_s'])} "
         "(off the budget's clock; cached from now on)")
  return [_line("corpus", f"{_si(c['tokens'])} tokens: {c['rows']:,} rows of {c['seq_len']} "
                f"({c['counted_tokens']:,} counted tokens); token store {how}: {c['path']}")]


def _run(plan) -> list[str]:
  run, c = plan["run"], plan["config"]
  bound = (f"train.max_steps={c['max_steps']:,}" if c["max_steps"] else
           f"budget {_duration(run['budget_s'])}")
  ends = {"budget": "the budget", "max_steps": "train.max_steps",
          "stop_steps": "train.stop_steps"}[run["ends_by"]]
  k = plan["checkpoint"]
  return [
      _line("run", f"{bound}: {run['steps']:,} steps, {_si(run['tokens'])} tokens, "
            f"{run['epochs']:.2f} epochs of the corpus; ETA {_duration(run['seconds'])}, "
            f"ended by {ends}"),
      _line("checkpoint", f"{_bytes(k['bytes'])} each (params {_bytes(k['params_bytes'])}, "
            f"optimizer state {_bytes(k['optimizer_bytes'])}); {k['saves']} save(s), "
            f"train.keep={c['keep']} keeps {k['kept']}: {_bytes(k['disk_bytes'])} of disk"),
  ]


def render(plan: dict) -> str:
  lines = [f"plan for {plan['workdir']['path']}"
           + (" (it holds checkpoints: these figures are for a run from step 0)"
              if plan["workdir"]["has_checkpoint"] else "")]
  for part in (_model, _memory, _gpu, _ramp, _throughput, _corpus, _run):
    lines += part(plan)
  lines += [f"WARNING: {w}" for w in plan["warnings"]] or ["no warnings"]
  return "\n".join(lines)
