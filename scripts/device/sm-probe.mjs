// A tiny probe of what Dawn's subgroup-matrix loads do with i8 data on the GPU it runs on, to settle which layout the
// tensor-core int8 kernel (shaders/int8_matmul_sm.wgsl) must use (docs/int8.md, "The tensor-core kernel"). It prints
// one JSON line per case and, for each, which of three layout hypotheses the GPU's output agrees with exactly:
//   packed-words    i8 values four to an i32 word, offset and stride in words (Dawn's source says this);
//   packed-bytes    i8 values four to a word, offset and stride in bytes (what the kernel assumed until 2026-11-30);
//   unpacked-words  one i8 value in the low byte of each word, offset and stride in words.
// Cases:
//   dawn-e2e-row / dawn-e2e-col  Dawn's own end2end i8 product (src/dawn/tests/end2end/SubgroupMatrixTests.cpp): a
//                                16 × 32 by 32 × 16 product, one subgroup, with Dawn's offsets and strides (words);
//   bytes-row                    the same numbers in bytes (×4), into a larger array so that Dawn accepts them;
//   kernel-words / kernel-bytes  the kernel's own tiling on one 64 × 64 × 64 block (workgroup tiles with 80-byte
//                                rows, left row-major, right column-major, two 32-deep steps, the four tiles of a
//                                stripe shared among the workgroup's subgroups, the i32 store through workgroup
//                                memory), with the fixed offsets (words) and the old ones (bytes); compared with
//                                the exact integer product.
// The fix is confirmed when dawn-e2e-* and kernel-words match (`"match":true`) and the others do not.
//
// On a lent GPU machine, with the device tool (needs only .device/node.xz and Dawn from .device/, as packed by
// scripts/device/pack.mjs, and .gl/ for a Vulkan loader where the image has none; a few seconds):
//   command: bash -c 'N=$(mktemp -d); u(){ xz -dc "$1" 2>/dev/null || python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open(sys.argv[1]),sys.stdout.buffer)" "$1"; }; u .device/node.xz >$N/node; chmod +x $N/node; D=.device/node_modules/webgpu/dist/linux-x64/dawn.node; [ -f $D ] || u $D.xz >$D; ldconfig -p | grep -q libvulkan.so.1 || { for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; }; I=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $I ] && export VK_DRIVER_FILES=$I; u .device/lib/libstdc++.so.6.xz >$N/libstdc++.so.6; $N/node scripts/device/sm-probe.mjs || LD_LIBRARY_PATH=$N $N/node scripts/device/sm-probe.mjs'
//   carry: [".device", ".gl"]   timeout_s: 120
// Here (no GPU): `node scripts/device/sm-probe.mjs --null` builds every case on Dawn's null backend (validation
// only: it executes nothing, so its outputs mean nothing).

import { existsSync } from 'node:fs';

const nullBackend = process.argv.includes('--null');
const bundled = new URL('../../.device/node_modules/webgpu/index.js', import.meta.url);
const { create, globals } = await import(existsSync(bundled) ? bundled.href : 'webgpu');
Object.assign(globalThis, globals);
const FEATURE = 'chromium-experimental-subgroup-matrix';
const out = (o) => {
  console.log(JSON.stringify(o));
  return o;
};

const gpu = create([...(nullBackend ? ['backend=null'] : []), 'enable-dawn-features=allow_unsafe_apis']);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  out({ probe: 'adapter', error: 'no adapter' });
  process.exit(1);
}
const info = adapter.info;
out({
  probe: 'adapter',
  vendor: info.vendor,
  architecture: info.architecture,
  device: info.device,
  description: info.description,
  subgroupMinSize: info.subgroupMinSize,
  subgroupMaxSize: info.subgroupMaxSize,
  subgroupMatrixConfigs: (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })),
  hasFeature: adapter.features.has(FEATURE),
  nullBackend,
});
if (!adapter.features.has(FEATURE) || !adapter.features.has('subgroups')) {
  out({ probe: 'adapter', error: `the adapter does not offer ${FEATURE} and subgroups` });
  process.exit(1);
}
const device = await adapter.requestDevice({ requiredFeatures: [FEATURE, 'subgroups'] });
device.addEventListener('uncapturederror', (e) => out({ probe: 'uncaptured', error: e.error.message }));

// --- Reference data and the three hypotheses -------------------------------------------------------------------

/** Dawn's Matrix::Fill for a signed matrix: values rotating through nine, [r][c] = kSIntValues[(offset + c + r·cols) % 9]. */
function dawnValues(rows, cols, valueOffset) {
  const k = [-43, -32, -21, -10, 0, 10, 21, 32, 43];
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => k[(valueOffset + c + r * cols) % 9]));
}
/** The bytes of a matrix in row- or column-major order. */
function layOut(m, colMajor) {
  const rows = m.length;
  const cols = m[0].length;
  const b = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) b[colMajor ? c * rows + r : r * cols + c] = m[r][c];
  return b;
}

const HYPOTHESES = ['packed-words', 'packed-bytes', 'unpacked-words'];
/**
 * The rows × cols i8 matrix a load reads from `bytes` (the array's bytes, `words` long) under a hypothesis, with
 * Dawn's robustness (stride raised to a line; an access past the end made at offset 0 with the minimum stride).
 */
function readMatrix(hyp, bytes, words, rows, cols, colMajor, offset, stride) {
  const lines = colMajor ? cols : rows;
  const lineLen = colMajor ? rows : cols;
  const unit = hyp === 'packed-bytes' ? 1 : 4;
  const length = hyp === 'packed-bytes' ? words * 4 : words;
  const minStride = hyp === 'packed-words' ? Math.max(lineLen / 4, 1) : lineLen;
  let o = offset;
  let s = Math.max(stride, minStride);
  if (o + s * (lines - 1) + minStride > length) [o, s] = [0, minStride];
  const m = Array.from({ length: rows }, () => new Array(cols).fill(0));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const line = colMajor ? c : r;
      const i = colMajor ? r : c;
      m[r][c] = hyp === 'unpacked-words' ? bytes[4 * (o + s * line + i)] : bytes[unit * (o + s * line) + i];
    }
  }
  return m;
}
function multiply(l, r) {
  return l.map((row) => r[0].map((_, n) => row.reduce((sum, v, k) => sum + v * r[k][n], 0)));
}
/** A 16 × 16 i32 result stored at offset 0 with `stride` words into `words` words (zeros elsewhere). */
function stored(res, colMajor, stride, words) {
  const w = new Int32Array(words);
  for (let m = 0; m < 16; m++) for (let n = 0; n < 16; n++) w[colMajor ? n * stride + m : m * stride + n] = res[m][n];
  return w;
}
function differing(a, b) {
  let n = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      n++;
      maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    }
  }
  return { differing: n, maxAbsDiff: maxAbs };
}

// --- Running a shader ------------------------------------------------------------------------------------------

/** Runs `code` once (one workgroup) with storage buffers `inputs` (Int32Arrays, read) and an output of `outWords`. */
async function run(code, inputs, outWords, workgroups = 1) {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const msgs = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error').map((m) => m.message);
  if (msgs.length) {
    await device.popErrorScope();
    throw new Error(`shader: ${msgs.join('; ')}`);
  }
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bufs = inputs.map((data) => {
    const b = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(b, 0, data);
    return b;
  });
  const output = device.createBuffer({ size: outWords * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(output, 0, new Int32Array(outWords));
  const read = device.createBuffer({ size: outWords * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [...bufs, output].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(workgroups);
  pass.end();
  enc.copyBufferToBuffer(output, 0, read, 0, outWords * 4);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Int32Array(read.getMappedRange().slice(0));
  read.unmap();
  const err = await device.popErrorScope();
  if (err) throw new Error(`validation: ${err.message}`);
  for (const b of [...bufs, output, read]) b.destroy();
  return got;
}

// --- Cases 1–3: Dawn's end2end product -------------------------------------------------------------------------

function e2eShader(colMajor, q, words) {
  const major = colMajor ? 'col_major' : 'row_major';
  return `enable chromium_experimental_subgroup_matrix;
enable subgroups;
@group(0) @binding(0) var<storage, read> inputs: array<i32, ${words}>;
@group(0) @binding(1) var<storage, read_write> output: array<i32, 256>;
@compute @workgroup_size(128)
fn main(@builtin(subgroup_id) sg: u32) {
  if (sg != 0u) { return; }
  let l = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, ${major}>(&inputs, 0u, ${((colMajor ? 16 : 32) * q) / 4}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, ${major}>(&inputs, ${(512 * q) / 4}u, ${((colMajor ? 32 : 16) * q) / 4}u);
  let acc = subgroupMatrixMultiplyAccumulate(l, r, subgroup_matrix_result<i32, 16, 16>());
  subgroupMatrixStore<${major}>(&output, 0u, acc, 16u);
}
`;
}

async function e2eCase(name, colMajor, q) {
  const words = q === 1 ? 256 : 1024;
  const left = dawnValues(16, 32, 0);
  const right = dawnValues(32, 16, 1);
  const bytes = new Int8Array(words * 4);
  bytes.set(layOut(left, colMajor), 0);
  bytes.set(layOut(right, colMajor), 512);
  // Past Dawn's two matrices (the bytes case's larger array): another pattern, so that a read there shows.
  for (let i = 1024; i < bytes.length; i++) bytes[i] = ((i * 37) % 255) - 127;
  const got = await run(e2eShader(colMajor, q, words), [new Int32Array(bytes.buffer)], 256);
  const offset = (512 * q) / 4;
  const ls = ((colMajor ? 16 : 32) * q) / 4;
  const rs = ((colMajor ? 32 : 16) * q) / 4;
  const want = stored(multiply(left, right), colMajor, 16, 256);
  const hyps = {};
  for (const h of HYPOTHESES) {
    // The numbers the shader passes, read as each hypothesis reads them.
    const l = readMatrix(h, bytes, words, 16, 32, colMajor, 0, ls);
    const r = readMatrix(h, bytes, words, 32, 16, colMajor, offset, rs);
    hyps[h] = differing(got, stored(multiply(l, r), colMajor, 16, 256)).differing === 0;
  }
  return out({
    probe: name,
    offsetsAndStrides: q === 1 ? 'words (Dawn end2end)' : 'bytes (old kernel)',
    match: differing(got, want).differing === 0,
    ...differing(got, want),
    agreesWith: HYPOTHESES.filter((h) => hyps[h]),
    got: Array.from(got.slice(0, 8)),
    want: Array.from(want.slice(0, 8)),
  });
}

// --- Cases 4–5: the kernel's tiling on one 64 × 64 × 64 block ---------------------------------------------------

function kernelShader(units) {
  const [loff, roff, stride] =
    units === 'words' ? ['s * 16u * 20u + h * 8u', 't * 16u * 20u + h * 8u', '20u'] : ['s * 16u * 80u + h * 32u', 't * 16u * 80u + h * 32u', '80u'];
  return `enable chromium_experimental_subgroup_matrix;
enable subgroups;
@group(0) @binding(0) var<storage, read> a: array<i32, 1024>;   // A: 64 rows × 64 i8 (16 words)
@group(0) @binding(1) var<storage, read> b: array<i32, 1024>;   // B: 64 columns × 64 i8
@group(0) @binding(2) var<storage, read_write> c: array<i32, 4100>;  // C: 64 × 64 i32, then subgroup size and count
var<workgroup> As: array<i32, 1280>;  // 80-byte rows, as the kernel
var<workgroup> Bs: array<i32, 1280>;
var<workgroup> Cs: array<i32, 1024>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) ns: u32,
        @builtin(subgroup_size) ss: u32) {
  for (var i = 0u; i < 8u; i++) {
    let idx = li + i * 128u;
    As[(idx >> 4u) * 20u + (idx & 15u)] = a[idx];
    Bs[(idx >> 4u) * 20u + (idx & 15u)] = b[idx];
  }
  if (li == 0u) { c[4096] = i32(ss); c[4097] = i32(ns); }
  workgroupBarrier();
  for (var s = 0u; s < 4u; s++) {
    for (var t = sg; t < 4u; t += ns) {
      var acc = subgroup_matrix_result<i32, 16, 16>();
      for (var h = 0u; h < 2u; h++) {
        let l = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(&As, ${loff}, ${stride});
        let r = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>(&Bs, ${roff}, ${stride});
        acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
      }
      subgroupMatrixStore<row_major>(&Cs, t * 16u, acc, 64u);
    }
    workgroupBarrier();
    for (var j = 0u; j < 8u; j++) {
      let idx = li + j * 128u;
      c[(s * 16u + (idx >> 6u)) * 64u + (idx & 63u)] = Cs[idx];
    }
    workgroupBarrier();
  }
}
`;
}

async function kernelCase(units) {
  let x = 12345;
  const rnd = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 24) - 128; // the whole i8 range
  };
  const A = new Int8Array(4096).map(rnd);
  const B = new Int8Array(4096).map(rnd);
  const got = await run(kernelShader(units), [new Int32Array(A.buffer), new Int32Array(B.buffer)], 4100);
  const want = new Int32Array(4096);
  for (let m = 0; m < 64; m++) {
    for (let n = 0; n < 64; n++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) sum += A[m * 64 + k] * B[n * 64 + k];
      want[m * 64 + n] = sum;
    }
  }
  const d = differing(got.subarray(0, 4096), want);
  return out({
    probe: `kernel-${units}`,
    offsetsAndStrides: units === 'words' ? 'words (fixed kernel)' : 'bytes (old kernel)',
    match: d.differing === 0,
    outputs: 4096,
    ...d,
    subgroupSize: got[4096],
    numSubgroups: got[4097],
    got: Array.from(got.slice(0, 8)),
    want: Array.from(want.slice(0, 8)),
  });
}

const cases = [
  ['dawn-e2e-row', () => e2eCase('dawn-e2e-row', false, 1)],
  ['dawn-e2e-col', () => e2eCase('dawn-e2e-col', true, 1)],
  ['bytes-row', () => e2eCase('bytes-row', false, 4)],
  ['kernel-words', () => kernelCase('words')],
  ['kernel-bytes', () => kernelCase('bytes')],
];
const results = {};
for (const [name, f] of cases) {
  const t0 = performance.now();
  try {
    results[name] = await f();
  } catch (e) {
    results[name] = out({ probe: name, error: String(e?.message ?? e) });
  }
  if (performance.now() - t0 > 20_000) out({ probe: name, note: 'slow', ms: Math.round(performance.now() - t0) });
}
device.destroy();
const m = (name) => results[name]?.match === true;
out({
  probe: 'verdict',
  // The fixed kernel's layout is what this GPU does: Dawn's own product and the kernel's tiling in words agree.
  wordsLayoutConfirmed: m('dawn-e2e-row') && m('dawn-e2e-col') && m('kernel-words'),
  oldBytesLayoutWrong: !m('bytes-row') && !m('kernel-bytes'),
  nullBackend,
});
