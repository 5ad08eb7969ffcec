// Runs shaders/int8_matmul_sm.wgsl where subgroup matrices do not exist: its subgroup-matrix operations are replaced
// by plain WGSL that does what Dawn does with them, and everything else of the kernel is kept as written: its tile
// loads, layouts, offsets, strides, stripe loop, subgroup work split, epilogue and stores. Every invocation of a
// subgroup computes the whole tile (as the subgroup does together); one of them stores it.
//
// The semantics, as Dawn implements them (google/dawn, read at 1e975e28f9, 2026-08-22; the webgpu package's dawn.node
// is from after 2026-08-18, docs/int8.md "The tensor-core kernel"):
// - subgroup_matrix_left<T, K, M> is M rows × K columns, subgroup_matrix_right<T, N, K> is K rows × N columns,
//   subgroup_matrix_result<T, N, M> is M rows × N columns: the template takes (columns, rows)
//   (src/tint/lang/core/core.def, `subgroup_matrix_left<T, K, R>`; src/tint/lang/spirv/writer/printer/printer.cc
//   emits OpTypeCooperativeMatrixKHR with rows = Rows(), columns = Columns()).
// - subgroupMatrixLoad<T, row_major | col_major>(p, offset, stride) and subgroupMatrixStore<…>(p, offset, value,
//   stride) count offset and stride in ELEMENTS OF THE ARRAY p points to, not in matrix elements: for an i8 matrix
//   in an array<i32>, in 32-bit words. The SPIR-V writer indexes the array with `offset` and passes `stride`
//   unchanged to OpCooperativeMatrixLoadKHR/StoreKHR, whose stride counts pointee elements
//   (src/tint/lang/spirv/writer/raise/builtin_polyfill.cc, SubgroupMatrixLoad/Store: `b.Access(elem_ptr, p,
//   offset)`; commit 9361310a57 "Make majorness templated variants' offset and stride operands be based on the
//   shader scalar type (array type)"); Dawn's end2end test divides its i8 offsets and strides by 4
//   (src/dawn/tests/end2end/SubgroupMatrixTests.cpp, kLoadOffset = K * M/4, kLeftStride = K/4 …).
// - The i8 elements are packed four to a word, little-endian, in memory order: row-major entry [r][c] is the byte at
//   4 · (offset + stride · r) + c, column-major entry [r][c] the byte at 4 · (offset + stride · c) + r.
// - Robustness (src/tint/lang/core/ir/transform/robustness.cc, ClampSubgroupMatrixCall): the stride is raised to at
//   least one line (a row, row-major; a column, column-major) in array elements, and an access whose last line would
//   end past the array's end is made at offset 0 with that minimum stride instead.
// - The pointer and the stride must be aligned to min(16 bytes, a line's bytes) (SPV_KHR_cooperative_matrix, as
//   docs/dawn/features/subgroup_matrix.md restates it); the GPU's behaviour is undefined otherwise, so here a
//   misaligned access gives a matrix of 85s, which no correct kernel's output survives.
//
// So on SwiftShader the kernel's own logic runs and can be compared with the DP4A kernel bit for bit; only the
// operations Dawn lowers to tensor-core instructions are stand-ins.
//
// A matrix value is a handle (u32) to the invocation's one private matrix of its kind (left, right, result), not an
// array passed by value: SwiftShader compiled the by-value form (2 KiB arrays copied into and out of every call) for
// 55 s, this one in a few. It holds because the kernel has at most one live matrix of each kind at a time; a kernel
// that kept two would overwrite one with the other here and fail the bit-for-bit comparison, not pass it.
// Before 2026-11-30 this file counted offsets and
// strides in i8 elements (bytes), as the feature's design document still says of the old, boolean-majorness form;
// that is why the kernel agreed here and differed in every output on an H200.

type Kind = 'left' | 'right';
type Major = 'row_major' | 'col_major';

/** The only configuration emulated: i8 × i8 → i32, 16 × 16 × 32 (M × N × K), the kernel's. */
const SHAPES: Record<Kind, { cols: number; rows: number }> = { left: { cols: 32, rows: 16 }, right: { cols: 16, rows: 32 } };
const RESULT = { cols: 16, rows: 16 };

/** The text with the subgroup-matrix operations emulated; throws if any form is left unreplaced. */
export function emulateSubgroupMatrices(source: string): string {
  let text = source.replace(/^enable chromium_experimental_subgroup_matrix;$/m, '// (subgroup matrices emulated)');
  const loads = new Map<string, { kind: Kind; major: Major; array: string }>();
  const stores = new Map<string, { major: Major; array: string }>();
  const found = { load: 0, mma: 0, store: 0 };
  text = text.replace(/subgroup_matrix_result<i32, 16, 16>\(\)/g, 'emuZeroResult()');
  text = text.replace(
    /subgroupMatrixLoad<subgroup_matrix_(left|right)<i8, (\d+), (\d+)>, (row_major|col_major)>\(&(\w+), /g,
    (_m, kind: Kind, cols: string, rows: string, major: Major, array: string) => {
      const shape = SHAPES[kind];
      if (Number(cols) !== shape.cols || Number(rows) !== shape.rows) {
        throw new Error(`subgroup_matrix_${kind}<i8, ${cols}, ${rows}>: the emulation knows only <i8, ${shape.cols}, ${shape.rows}>`);
      }
      const name = `emuLoad_${kind}_${major}_${array}`;
      loads.set(name, { kind, major, array });
      found.load++;
      return `${name}(`;
    },
  );
  text = text.replace(/subgroupMatrixMultiplyAccumulate\(/g, () => {
    found.mma++;
    return 'emuMultiplyAccumulate(';
  });
  text = text.replace(/subgroupMatrixStore<(row_major|col_major)>\(&(\w+), /g, (_m, major: Major, array: string) => {
    const name = `emuStore_${major}_${array}`;
    stores.set(name, { major, array });
    found.store++;
    return `${name}(`;
  });
  for (const [op, n] of Object.entries(found)) {
    if (n === 0) throw new Error(`the shader has no subgroup-matrix ${op} the emulation recognises: update the emulation`);
  }
  const code = text.replace(/\/\/.*$/gm, '');
  const left = /subgroup_matrix|subgroupMatrix/.exec(code);
  if (left) throw new Error(`a subgroup-matrix operation the emulation does not know: ${code.slice(left.index, left.index + 80)}`);
  // The stand-ins read and write the arrays the shader declares, of the lengths it declares.
  const words = (name: string): number => {
    const m = new RegExp(`var<[^>]*>\\s*${name}\\s*:\\s*array<i32,\\s*(\\d+)u?>`).exec(text);
    if (!m) throw new Error(`the shader does not declare ${name} as an array<i32, N>: update the emulation`);
    return Number(m[1]);
  };
  const parts = [common];
  for (const [name, l] of loads) parts.push(loadFunction(name, l.kind, l.major, l.array, words(l.array)));
  for (const [name, s] of stores) parts.push(storeFunction(name, s.major, s.array, words(s.array)));
  return `diagnostic(off, subgroup_uniformity);\n${text}\n${parts.join('\n')}`;
}

const common = `
// The invocation's matrices, one of each kind; a matrix value in the shader is a handle (0u) to its kind's.
var<private> emuLeft: array<i32, 512>;
var<private> emuRight: array<i32, 512>;
var<private> emuResult: array<i32, 256>;

fn emuZeroResult() -> u32 {
  for (var i = 0u; i < 256u; i++) { emuResult[i] = 0; }
  return 0u;
}

// Byte b (0..3) of a word, sign-extended: an i8 element of an array<i32>, little-endian as the buffers are.
fn emuI8(word: i32, b: u32) -> i32 {
  return (word << (24u - 8u * b)) >> 24u;
}

// Dawn's robustness for a matrix access of \`lines\` lines of at least \`minStride\` array elements each: the stride
// raised to the minimum; an access past the array's end made at offset 0 with the minimum stride.
fn emuClamp(offset: u32, stride: u32, lines: u32, minStride: u32, length: u32) -> vec2u {
  let s = max(stride, minStride);
  if (offset + s * (lines - 1u) + minStride <= length) { return vec2u(offset, s); }
  return vec2u(0u, minStride);
}

// result[m][n] += Σ_k left[m][k] · right[k][n] (16 × 16 × 32), in i32.
fn emuMultiplyAccumulate(l: u32, r: u32, acc: u32) -> u32 {
  for (var m = 0u; m < 16u; m++) {
    for (var n = 0u; n < 16u; n++) {
      var s = emuResult[m * 16u + n];
      for (var k = 0u; k < 32u; k++) { s += emuLeft[m * 32u + k] * emuRight[k * 16u + n]; }
      emuResult[m * 16u + n] = s;
    }
  }
  return acc;
}
`;

/** An i8 load from an array<i32> of `length` words: offset and stride in words, the bytes packed four to a word. */
function loadFunction(name: string, kind: Kind, major: Major, array: string, length: number): string {
  const { cols, rows } = SHAPES[kind];
  const lines = major === 'row_major' ? rows : cols; // rows stored one after another, or columns
  const lineBytes = major === 'row_major' ? cols : rows;
  const minStride = Math.max(lineBytes / 4, 1);
  const align = Math.min(16, lineBytes);
  const at = major === 'row_major' ? '4u * (o.x + o.y * r) + c' : '4u * (o.x + o.y * c) + r';
  const m = kind === 'left' ? 'emuLeft' : 'emuRight';
  return `
// subgroup_matrix_${kind}<i8, ${cols}, ${rows}> (${rows} rows × ${cols} columns), ${major.replace('_', '-')}, from ${array}
// (${length} words): [r][c] is the byte at ${at.replace(/o\.x/, 'offset').replace(/o\.y/, 'stride')}.
fn ${name}(offset: u32, stride: u32) -> u32 {
  let o = emuClamp(offset, stride, ${lines}u, ${minStride}u, ${length}u);
  if ((4u * o.x) % ${align}u != 0u || (4u * o.y) % ${align}u != 0u) {
    for (var i = 0u; i < ${rows * cols}u; i++) { ${m}[i] = 85; }
    return 0u;
  }
  for (var r = 0u; r < ${rows}u; r++) {
    for (var c = 0u; c < ${cols}u; c++) {
      let at = ${at};
      ${m}[r * ${cols}u + c] = emuI8(${array}[at >> 2u], at & 3u);
    }
  }
  return 0u;
}
`;
}

/** The i32 result's store to an array<i32> of `length` words, by one invocation of the subgroup. */
function storeFunction(name: string, major: Major, array: string, length: number): string {
  const { cols, rows } = RESULT;
  const lines = major === 'row_major' ? rows : cols;
  const minStride = major === 'row_major' ? cols : rows;
  const at = major === 'row_major' ? 'o.x + o.y * r + c' : 'o.x + o.y * c + r';
  return `
// subgroup_matrix_result<i32, ${cols}, ${rows}>, ${major.replace('_', '-')}, to ${array} (${length} words): [r][c] to word
// ${at.replace(/o\.x/, 'offset').replace(/o\.y/, 'stride')}. Misaligned (not 16-byte) offsets or strides store nothing.
fn ${name}(offset: u32, value: u32, stride: u32) {
  let o = emuClamp(offset, stride, ${lines}u, ${minStride}u, ${length}u);
  if ((4u * o.x) % 16u != 0u || (4u * o.y) % 16u != 0u) { return; }
  if (subgroupElect()) {
    for (var r = 0u; r < ${rows}u; r++) {
      for (var c = 0u; c < ${cols}u; c++) { ${array}[${at}] = emuResult[r * ${cols}u + c]; }
    }
  }
}
`;
}
