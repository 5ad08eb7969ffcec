#!/usr/bin/env bash
# Issue #9's speed figures on a lent GPU machine, in one device call. Prepare here first (docs/benchmarks.md,
# "Running the benchmarks on a lent GPU"):
#   node scripts/device/pack.mjs && node scripts/device/pack.mjs --park
# then call the device tool with
#   command: bash scripts/device/h200-speed.sh     carry: [".device", ".gl"]     timeout_s: 600
# and afterwards: node scripts/device/pack.mjs --unpark
#
# Needs no Node or node_modules on the machine: .device/ holds Node (xz), the CLI bundled into one file and Dawn.
# Each benchmark runs under its own `timeout`, and the script stops starting new ones at the overall budget
# (BUDGET_S, default 480 s), so it ends well inside the call's 600 s. A failed command (Dawn has died there with a
# futex error) is logged and the script goes on; one that fails within 30 s is tried once more.
# Output: every JSON line on stdout as it is measured, and in $OUT/bench.jsonl (with a {"device":"step"} line before
# each command's lines); stderr and progress in $OUT/bench.log; a compact summary of the key figures at the end.
# SMOKE=1: every command tiny (SwiftShader-sized), for testing this script on a machine without a GPU
# (scripts/device/smoke.sh). STEPS=matmul,model-tiled: only the named steps (for a second call while the machine is
# still warm). BUDGET_S: the overall budget in seconds.

set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/device-out}
mkdir -p "$OUT"
JSONL=$OUT/bench.jsonl
LOG=$OUT/bench.log
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then BUDGET_S=${BUDGET_S:-1800}; else BUDGET_S=${BUDGET_S:-480}; fi
T0=$(date +%s)
: >"$JSONL" # a fresh file for each run ($OUT starts empty on the device anyway)
: >"$LOG"
elapsed() { echo $(($(date +%s) - T0)); }
log() { echo "[h200-speed +$(elapsed)s] $*" | tee -a "$LOG" >&2; }

# --- Vulkan: the loader and glvnd (Debian's, from .gl/, where the image lacks one) and NVIDIA's driver manifest ------
# NVIDIA's Vulkan driver is libGLX_nvidia.so.0, which needs glvnd (libGLdispatch, libGLX) to give the loader its
# vkCreateInstance: with the loader alone, Dawn finds "no drivers" (seen on the H200, 2026-11-30).
missing=""
for lib in libvulkan.so.1 libGLdispatch.so.0 libGLX.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $lib"
done
if [ -z "$missing" ]; then
  log "libvulkan and glvnd: the image's own ($(ldconfig -p | grep -m1 'libvulkan\.so\.1' | sed 's/.*=> //'))"
elif ls .gl/*.deb >/dev/null 2>&1; then
  log "missing:$missing; unpacking .gl/"
  for f in .gl/*.deb; do dpkg -x "$f" / && log "unpacked $f into /"; done
  ldconfig
else
  log "WARNING: missing$missing and no .gl/*.deb to unpack: Dawn may find no adapter"
fi
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$NVIDIA_ICD" ]; then
  export VK_DRIVER_FILES=$NVIDIA_ICD
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  log "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

# --- Node and Dawn from .device/ -------------------------------------------------------------------------------
unxz_to() { # unxz_to FILE.xz DEST: xz where it exists, else Python's lzma
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"; else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
if [ ! -f .device/node.xz ] || [ ! -f .device/finetune.mjs ]; then
  echo "h200-speed: .device/ is missing or incomplete: run node scripts/device/pack.mjs here and carry .device" >&2
  exit 1
fi
NODE_DIR=$(mktemp -d /tmp/finetune-node.XXXXXX)
NODE=$NODE_DIR/node
unxz_to .device/node.xz "$NODE" && chmod +x "$NODE" || { echo "h200-speed: could not unpack .device/node.xz" >&2; exit 1; }
DAWN=.device/node_modules/webgpu/dist/linux-x64/dawn.node
if [ ! -f "$DAWN" ] || [ "$DAWN.xz" -nt "$DAWN" ]; then
  unxz_to "$DAWN.xz" "$DAWN" || { echo "h200-speed: could not unpack $DAWN.xz" >&2; exit 1; }
fi
log "node $("$NODE" --version), dawn.node $(stat -c %s "$DAWN") bytes"
# dawn.node needs GLIBCXX_3.4.30 (GCC 12's libstdc++): where the image's is older, use the one packed beside it.
load_dawn() { "$NODE" --input-type=module -e 'await import("./.device/node_modules/webgpu/index.js")' 2>>"$LOG"; }
if ! load_dawn; then
  if [ -f .device/lib/libstdc++.so.6.xz ]; then
    unxz_to .device/lib/libstdc++.so.6.xz "$NODE_DIR/libstdc++.so.6"
    export LD_LIBRARY_PATH=$NODE_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    log "dawn.node did not load with the image's libstdc++; retrying with the packed one"
  fi
  load_dawn || { echo "h200-speed: dawn.node does not load; see $LOG" >&2; tail -n 5 "$LOG" >&2; }
fi

# --- Header ----------------------------------------------------------------------------------------------------
GPU_LINE=$(nvidia-smi -L 2>/dev/null | head -1)
GPU_LINE=${GPU_LINE:-no nvidia-smi}
"$NODE" -e '
  const fs = require("fs");
  let m = {};
  try { m = JSON.parse(fs.readFileSync(".device/manifest.json", "utf8")); } catch {}
  console.log(JSON.stringify({ device: "header", gpu: process.argv[1], commit: m.commit, dirty: m.dirty, sourceHash: m.sourceHash,
    packedAt: m.packedAt, node: process.version, dawn: m.dawn && m.dawn.version, smoke: process.argv[2] === "1",
    budgetSeconds: Number(process.argv[3]), date: new Date().toISOString(),
    vulkanDriverFiles: process.env.VK_DRIVER_FILES || process.env.VK_ICD_FILENAMES || null }));
' "$GPU_LINE" "$SMOKE" "$BUDGET_S" | tee -a "$JSONL"

# --- One command -----------------------------------------------------------------------------------------------
SUMMARY=()
STEP_OUT=$NODE_DIR/step.out
# step NAME TIMEOUT_S finetune-args…: runs once (twice when it fails within 30 s), within the overall budget.
step() {
  local name=$1 limit=$2
  shift 2
  local attempt rc start secs left
  if [ -n "${STEPS:-}" ] && [[ ",$STEPS," != *",$name,"* ]]; then return; fi
  for attempt in 1 2; do
    left=$((BUDGET_S - $(elapsed)))
    if [ "$left" -lt 15 ]; then
      log "skip $name: the ${BUDGET_S}s budget is spent"
      SUMMARY+=("$name skipped")
      printf '{"device":"step","step":"%s","skipped":"budget"}\n' "$name" | tee -a "$JSONL"
      return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    printf '{"device":"step","step":"%s","attempt":%d,"timeoutSeconds":%d,"argv":"%s"}\n' "$name" "$attempt" "$limit" "$*" | tee -a "$JSONL"
    log "start $name (attempt $attempt, timeout ${limit}s): finetune $*"
    start=$(date +%s)
    if [ "$1" = check ] || [ "$1" = gpu-info ]; then
      # check and gpu-info print one indented JSON report: keep it one line in bench.jsonl.
      timeout -k 10 "$limit" "$NODE" .device/finetune.mjs "$@" >"$STEP_OUT" 2>>"$LOG"
      rc=$?
      "$NODE" -e 'const s = require("fs").readFileSync(process.argv[1], "utf8");
        try { console.log(JSON.stringify({ device: process.argv[2], ...JSON.parse(s) })); } catch { process.stdout.write(s); }' "$STEP_OUT" "$1" | tee -a "$JSONL"
    else
      timeout -k 10 "$limit" "$NODE" .device/finetune.mjs "$@" 2>>"$LOG" | tee -a "$JSONL"
      rc=${PIPESTATUS[0]}
    fi
    secs=$(($(date +%s) - start))
    log "end $name: exit $rc after ${secs}s"
    printf '{"device":"step-end","step":"%s","attempt":%d,"exit":%d,"seconds":%d}\n' "$name" "$attempt" "$rc" "$secs" | tee -a "$JSONL"
    if [ "$rc" -eq 0 ]; then
      SUMMARY+=("$name ok ${secs}s")
      return
    fi
    echo "--- $name: exit $rc$([ "$rc" -eq 124 ] && echo ' (timed out)'); last lines of its stderr:"
    tail -n 6 "$LOG"
    # Timed out, a usage error (exit 2) or a long run: trying again would not help, or not fit.
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ "$rc" -eq 2 ] || [ "$secs" -ge 30 ]; then break; fi
  done
  SUMMARY+=("$name FAILED exit $rc")
}

# probe NAME TIMEOUT_S SCRIPT.mjs: a Node script of ours (not the CLI) under the same budget, its JSON lines kept.
probe() {
  local name=$1 limit=$2 script=$3 rc start secs left
  if [ -n "${STEPS:-}" ] && [[ ",$STEPS," != *",$name,"* ]]; then return; fi
  left=$((BUDGET_S - $(elapsed)))
  if [ "$left" -lt 15 ]; then SUMMARY+=("$name skipped"); return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  printf '{"device":"step","step":"%s","attempt":1,"timeoutSeconds":%d,"argv":"%s"}\n' "$name" "$limit" "$script" | tee -a "$JSONL"
  log "start $name: node $script"
  start=$(date +%s)
  timeout -k 10 "$limit" "$NODE" "$script" 2>>"$LOG" | tee -a "$JSONL"
  rc=${PIPESTATUS[0]}
  secs=$(($(date +%s) - start))
  printf '{"device":"step-end","step":"%s","attempt":1,"exit":%d,"seconds":%d}\n' "$name" "$rc" "$secs" | tee -a "$JSONL"
  if [ "$rc" -eq 0 ]; then SUMMARY+=("$name ok ${secs}s"); else SUMMARY+=("$name FAILED exit $rc"); fi
}

# --- The measurements, most valuable first (timeouts: a few times the expected H200 time) --------------------------
FT=(--model test/fixtures/tiny-mistral --adapter test/fixtures/tiny-adapter)
# The kernels a training run chose on the H200 (bench tune, 2026-11-30).
BEST=(--gemm tiled --attention tiled --lora-kernel skinny)
if [ "$SMOKE" = 1 ]; then
  S=(--small --min-ms 20)
  step gpu-info 120 gpu-info --no-check
  # Fails on SwiftShader (no subgroup matrices): checks that the probe runs from the kit and says so.
  probe sm-probe 60 scripts/device/sm-probe.mjs
  step model-best-fast 600 bench model --tokens 16 --steps 1 "${BEST[@]}" --tiled-stages 2 --no-robustness "${S[@]}"
  step matmul 300 bench matmul --sizes 64 --shapes 8x64x16 --kernels basic,tiled,tiled-fixed --min-ms 20
  step sweep 300 bench sweep --sizes 256 --min-ms 20
  step nf4-basic 300 bench nf4 --tokens 16 --gemm basic "${S[@]}"
  step nf4-tiled 300 bench nf4 --tokens 16 --gemm tiled "${S[@]}"
  step attention 300 bench attention --tokens 16 "${S[@]}"
  step layer-no-spill 300 bench layer --tokens 16 --attention tiled --no-attention-spill "${S[@]}"
  step layer-no-lora-epilogue 300 bench layer --tokens 16 --gemm tiled --no-lora-epilogue "${S[@]}"
  step layer-warp 300 bench layer --tokens 16 --gemm tiled-warp "${S[@]}"
  step layer-k32 300 bench layer --tokens 16 --gemm tiled-k32 "${S[@]}"
  step matmul-k32 300 bench matmul --sizes 128 --kernels tiled,tiled-k32,tiled-warp-k32 --min-ms 20
  step profile 300 bench profile --tokens 16 --gemm tiled --attention tiled --lora-kernel skinny "${S[@]}"
  step layer-basic 300 bench layer --tokens 16 --gemm basic "${S[@]}"
  step layer-tiled 300 bench layer --tokens 16 --gemm tiled "${S[@]}"
  step layer-tiled-attn 300 bench layer --tokens 16 --gemm tiled --attention tiled "${S[@]}"
  step tune 300 bench tune --tokens 16 "${S[@]}"
  step check-lora-tiled 600 check "${FT[@]}" --golden test/fixtures/golden_lora.safetensors --quant none --gemm tiled
  step model-tiled 600 bench model --tokens 16 --steps 1 --gemm tiled --gpu-memory 139 "${S[@]}"
  step model-keep-attention 600 bench model --tokens 16 --steps 1 --keep-attention "${S[@]}"
  step estimate 600 bench estimate --tokens 16 --steps 1 "${S[@]}"
  step int8 300 bench int8 --tokens 16 "${S[@]}"
  # Fails on SwiftShader by design (no subgroup matrices): checks that the refusal is clean and says why.
  step int8-sm 300 bench int8 --tokens 16 --int8-kernel subgroup-matrix "${S[@]}"
  step check-int8-gates 600 check "${FT[@]}" --golden test/fixtures/golden_qlora.safetensors --quant nf4 --int8-gates all
  step model-int8-mlp 600 bench model --tokens 16 --steps 1 --gemm tiled --base-matmul int8-mlp "${S[@]}"
  step estimate-stream 600 bench estimate --tokens 16 --steps 1 --stream-layers "${S[@]}"
  step dispatch 300 bench dispatch --tokens 16 "${S[@]}"
  step padding 300 bench padding --synthetic --steps 1
  step validation 300 bench validation --synthetic --steps 1
  step head 300 bench head --synthetic --steps 1
else
  # Ordered by what issue #9 asks and nobody has measured since (docs/benchmarks.md), most valuable first: a GPU call is
  # rare and may die part way (Dawn's futex error), so the headline numbers come first. Every timing is a median over
  # batches (and the model's over 3 steps) since 2026-12-04 run c, whose machine slowed single measurements 2-20x.
  # 1. The whole model on the kernels a training run picks here (tune: tiled GEMM, tiled attention, skinny LoRA):
  #    tokens/s checkpointed and with the layers the memory allows kept, beside the ledger's peak (#9: 700 in <= 7 GB,
  #    923 kept). 2026-12-04 run c: 723.7 / 993.9 (769.1 / 1,019.2 without clamps; run b 754.2 / 987.9).
  step model-best 150 bench model --tokens 2048 --steps 3 "${BEST[@]}" --gpu-memory 139
  # 1b. The same with the tiled GEMM's K step of 32 (DEEP_K, 2026-12-04 late, unmeasured): the sweep's 128x128x32 design
  #     ran 1.10-1.11x the production kernel paired in run c; a run picks it only where tune measures it faster.
  step model-best-k32 150 bench model --tokens 2048 --steps 3 --gemm tiled-k32 --attention tiled --lora-kernel skinny --gpu-memory 139
  # 2. Where one checkpointed layer's time goes (#9: LoRA <= 3 % of the layer; run c 2.7 %, its t, dt, dA and dB
  #    products 64-87 us each where byte counts give 15-35).
  step profile-best 60 bench profile --tokens 2048 "${BEST[@]}"
  # 3. The fused NF4 products at every projection's shape (#9: >= 0.95x plain, k/v >= 0.8x), each on both blocks:
  #    run c's forward 0.93-0.94 at q/o's, gate/up's and down's shapes (every input gradient >= 0.98). Since then the
  #    NF4 products dequantise a K step's weights before the barrier instead of between the barriers (unmeasured), and
  #    each product is also timed with a K step of 32 beside 16 (vsKStep16, `k32` in the summary), and dequantised
  #    first, then the plain GEMM (`deq-first`: would the bitsandbytes way reach 0.95 where the fused forward does not?).
  step nf4-tiled 180 bench nf4 --tokens 2048 --gemm tiled --min-ms 150
  # 4. Attention beside the plain product in alternating rounds (vsPlainMatmul: #9 forward >= 0.40, backward >= 0.25);
  #    last measured in run a, skipped for time in runs b and c.
  step attention 60 bench attention --tokens 2048 --gemm tiled
  # 5. The layer against the matmul-bound ceiling (#9: >= 0.8 at 2048 and 4096 tokens), with and without bounds clamps.
  #    Run c's 4096-token layer took 300 ms (run b 182) in a single disturbed measurement.
  step layer-best 60 bench layer --tokens 2048 "${BEST[@]}"
  step layer-best-k32 60 bench layer --tokens 2048 --gemm tiled-k32 --attention tiled --lora-kernel skinny
  step layer-best-warp-k32 60 bench layer --tokens 2048 --gemm tiled-warp-k32 --attention tiled --lora-kernel skinny
  step layer-best-4096 90 bench layer --tokens 4096 "${BEST[@]}"
  step profile-best-4096 60 bench profile --tokens 4096 "${BEST[@]}"
  step layer-best-unclamped 60 bench layer --tokens 2048 "${BEST[@]}" --no-robustness
  # 6. The plain fp32 matmul at 4096^3 and its variants (#9: >= 32 TFLOP/s, stretch 40, every variant >= 0.9x plain).
  step matmul-tiled 120 bench matmul --sizes 4096 --tokens 2048 --kernels tiled --min-ms 150
  # 6b. The production kernel's warp map and K step of 32 paired against it at 4096^3 and gate/up's shape, beside the
  #     generated designs (run c: the generated 128x128x32 warp design 1.11 / 1.10x).
  step sweep 90 bench sweep --sizes 4096 --shapes 2048x14336x4096
  # 7. The golden check on the kernels a run picks, as a browser (bounds clamps) and a GPU server would compute it.
  step check-best 60 check "${FT[@]}" --golden test/fixtures/golden_qlora.safetensors --quant nf4 "${BEST[@]}"
  step check-best-unclamped 60 check "${FT[@]}" --golden test/fixtures/golden_qlora.safetensors --quant nf4 "${BEST[@]}" --no-robustness
  # 8. The lm_head + cross-entropy (#9: >= 0.9x plain) and the small kernels; the whole step without clamps; what a run
  #    picks; the time estimates; the small-GPU path (layers streamed from host memory) against resident training.
  step kernels 120 bench kernels --tokens 2048 --gemm tiled
  step model-best-unclamped 150 bench model --tokens 2048 --steps 3 "${BEST[@]}" --no-robustness --gpu-memory 139
  step tune 120 bench tune --tokens 2048
  step estimate 150 bench estimate --tokens 2048 --steps 2 "${BEST[@]}"
  step estimate-stream 150 bench estimate --tokens 2048 --steps 2 "${BEST[@]}" --stream-layers
  step stream 150 bench stream --tokens 2048 --steps 3 "${BEST[@]}"
  # Padding-free micro-batches at Mistral-7B's shape: random NF4 weights, 8 log-normal rows (median 512 tokens).
  step padding-7b 120 bench padding --synthetic --steps 2 "${BEST[@]}"
  # Packed validation passes at Mistral-7B's shape: 50 log-normal rows (Replicate's default held-out count and
  # validation_batch_size 1) as 50 forward passes against passes of 4 rows (2026-12-05, unmeasured on a GPU).
  step validation-7b 150 bench validation --synthetic "${BEST[@]}"
  # The lm_head on the tokens with a loss alone against every token (2026-12-05, measured on SwiftShader only): at 7B
  #     the head is ~1 % of a step, so this checks that gathering and scattering the rows costs nothing, not a speedup.
  step head-7b 150 bench head --synthetic --steps 2 "${BEST[@]}"
  # 9. Design comparisons measured in runs b and c (the warp map, the generated designs, int8 on the MLP, kept
  #    attention): for a call with time to spare.
  step layer-best-warp 60 bench layer --tokens 2048 --gemm tiled-warp --attention tiled --lora-kernel skinny
  step matmul-k32 150 bench matmul --sizes 4096 --tokens 2048 --kernels tiled-k32 --min-ms 150
  step matmul-warp 120 bench matmul --sizes 4096 --tokens 2048 --kernels tiled-warp --min-ms 150
  # The NF4 products on the warp map (what `tune` picked in runs b and c, by 0.1 ms a layer; never timed alone).
  step nf4-warp 90 bench nf4 --tokens 2048 --gemm tiled-warp --min-ms 150
  step model-int8-mlp 150 bench model --tokens 2048 --steps 3 "${BEST[@]}" --base-matmul int8-mlp --gpu-memory 139
  step model-best-keep-attention 150 bench model --tokens 2048 --steps 3 "${BEST[@]}" --keep-attention
  # Measured in run a of 2026-12-04 and not changed since: the layer without the dS scratch or LoRA's epilogue terms.
  step layer-best-no-spill 60 bench layer --tokens 2048 "${BEST[@]}" --no-attention-spill
  step layer-best-no-lora-epilogue 60 bench layer --tokens 2048 "${BEST[@]}" --no-lora-epilogue
  step gpu-info 30 gpu-info --no-check
  step matmul-fixed 180 bench matmul --sizes 4096 --tokens 2048 --kernels tiled-fixed
  step dispatch 60 bench dispatch --tokens 128,2048
  step skinny 120 bench matmul --sizes 256 --tokens 8 --shapes 2048x8x4096,8x4096x2048,4096x8x2048,2048x8x14336,14336x8x2048 --kernels basic --min-ms 50
  # Measured on 2026-11-30 and not changed since: the tensor-core int8 kernel (right, slower than DP4A), two stages of
  # GEMM tiles (slower), the basic kernels, the int8 products against fp32.
  probe sm-probe 30 scripts/device/sm-probe.mjs
  step check-int8-sm 60 check "${FT[@]}" --golden test/fixtures/golden_qlora.safetensors --quant nf4 --int8-gates int8-mlp --int8-kernel subgroup-matrix
  step int8-sm 120 bench int8 --tokens 2048 --gemm tiled --int8-kernel subgroup-matrix
  step layer-best-stages 60 bench layer --tokens 2048 "${BEST[@]}" --tiled-stages 2
  step model-basic 150 bench model --tokens 2048 --steps 2 --gemm basic --gpu-memory 139
  step int8 120 bench int8 --tokens 2048 --gemm tiled
  step check-int8-gates 60 check "${FT[@]}" --golden test/fixtures/golden_qlora.safetensors --quant nf4 --int8-gates all
fi

# --- Summary ---------------------------------------------------------------------------------------------------
echo "=== h200-speed: $(elapsed)s in all; files in \$OUT: bench.jsonl (every line), bench.log (stderr, progress)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
"$NODE" scripts/device/summary.mjs "$JSONL" 2>>"$LOG" || echo "(summary failed; bench.jsonl has everything)"
rm -rf "$NODE_DIR"
exit 0
