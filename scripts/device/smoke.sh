#!/usr/bin/env bash
# Tries scripts/device/h200-speed.sh here, as the device machine would get it: a copy of what travels (tracked and
# untracked-not-ignored files, less the parked big files and the node_modules link, plus .device and .gl) in a temp
# folder, no node_modules, no `node` on PATH, SMOKE=1 (every command tiny; SwiftShader takes 5-10 minutes on two
# cores). Run node scripts/device/pack.mjs first. Usage: bash scripts/device/smoke.sh [WORKDIR]
# (STEPS=int8,int8-sm bash scripts/device/smoke.sh: only those steps, as on the device.)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-$(mktemp -d /tmp/device-smoke.XXXXXX)}
mkdir -p "$WORK/repo" "$WORK/out" "$WORK/bin"
[ -f .device/node.xz ] || { echo "no .device/: run node scripts/device/pack.mjs first" >&2; exit 1; }
git ls-files -z --cached --others --exclude-standard |
  grep -zv -e '^node_modules$' -e '^public/models/mistral-nano-demo/model.safetensors$' -e '^test/fixtures/tiny-mistral.onnx$' |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$WORK/repo"
cp -r .device "$WORK/repo/"
[ -d .gl ] && cp -r .gl "$WORK/repo/"
rm -f "$WORK/repo/.device/node_modules/webgpu/dist/linux-x64/dawn.node"
# A PATH with the usual tools and no node.
for c in bash sh env xz timeout tee date ldconfig grep sed stat mktemp tail head rm mkdir ls dpkg python3 cat chmod dirname nvidia-smi; do
  p=$(command -v "$c" || true)
  [ -n "$p" ] && ln -sf "$p" "$WORK/bin/$c"
done
echo "smoke run in $WORK/repo (output in $WORK/out), $(du -sh "$WORK/repo" | cut -f1) copied"
cd "$WORK/repo"
env -i HOME="$HOME" PATH="$WORK/bin" OUT="$WORK/out" SMOKE=1 ${STEPS:+STEPS="$STEPS"} bash scripts/device/h200-speed.sh
echo "smoke: $(grep -c '"device":"step-end","step":"[^"]*","attempt":[0-9]*,"exit":0' "$WORK/out/bench.jsonl") steps exited 0; files: $(ls "$WORK/out")"
