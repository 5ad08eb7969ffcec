// Runs shaders/int8_matmul_sm.wgsl where subgroup matrices do not exist: its four subgroup-matrix operations are
// replaced by plain WGSL that does what the extension's specification says they do (gpuweb
// proposals/subgroup-matrix.md: a row-major entry [r][c] at offset + stride · r + c, column-major at
// offset + stride · c + r, both counted in i8 elements, i.e. bytes, of an array<i32>; a multiply-accumulate over K;
// a row-major i32 store), and everything else of the kernel is kept as written: its tile loads, layouts, offsets,
// strides, stripe loop, subgroup work split, epilogue and stores. Every invocation of a subgroup computes the whole
// tile (as the subgroup does together); one of them stores it.
//
// So on SwiftShader the kernel's own logic runs and can be compared with the DP4A kernel bit for bit; only the four
// operations Dawn lowers to tensor-core instructions are stand-ins. The loads also do what Dawn's lowering adds
// (bounds, whole-word offsets), so a kernel that relied on anything else would fail here too.

/** The kernel's text with the subgroup-matrix operations emulated; throws if any form is left unreplaced. */
export function emulateSubgroupMatrices(source: string): string {
  let text = source.replace(/^enable chromium_experimental_subgroup_matrix;$/m, '// (subgroup matrices emulated)');
  const forms: [RegExp, string][] = [
    [/subgroup_matrix_result<i32, 16, 16>\(\)/g, 'array<i32, 256>()'],
    [/subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>\(&(\w+), /g, 'emuLeft_$1('],
    [/subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>\(&(\w+), /g, 'emuRight_$1('],
    [/subgroupMatrixMultiplyAccumulate\(/g, 'emuMultiplyAccumulate('],
    [/subgroupMatrixStore<row_major>\(&(\w+), /g, 'emuStore_$1('],
  ];
  for (const [pattern, replacement] of forms) {
    if (!pattern.test(text)) throw new Error(`the kernel no longer has ${pattern.source}: update the emulation`);
    text = text.replace(pattern, replacement);
  }
  const code = text.replace(/\/\/.*$/gm, '');
  const left = /subgroup_matrix|subgroupMatrix/.exec(code);
  if (left) throw new Error(`a subgroup-matrix operation the emulation does not know: ${code.slice(left.index, left.index + 80)}`);
  // The stand-ins read As (left), Bs (right) and write Cs, the kernel's workgroup arrays, of the sizes it declares.
  const words = (name: string): number => {
    const m = new RegExp(`var<workgroup> ${name}: array<i32, (\\d+)>`).exec(text);
    if (!m) throw new Error(`the kernel no longer declares ${name} as an array<i32, N>: update the emulation`);
    return Number(m[1]);
  };
  return `diagnostic(off, subgroup_uniformity);\n${text}\n${emulation(words)}`;
}

const emulation = (words: (name: string) => number): string => `
// Byte b (0..3) of a word, sign-extended: an i8 element of an array<i32>, little-endian as the buffers are.
fn emuI8(word: i32, b: u32) -> i32 {
  return (word << (24u - 8u * b)) >> 24u;
}

// As Dawn lowers an i8 load from an array<i32> (Tint's SPIR-V output): a load that would reach past the array's end
// gives a zero matrix, and the offset and stride are whole words (divided by 4, rounded down).
fn emuBytesFit(offset: u32, stride: u32, lines: u32, line: u32, words: u32) -> bool {
  return offset + stride * (lines - 1u) + line <= words * 4u;
}

// subgroup_matrix_left<i8, 32, 16> (16 rows × 32 columns), row-major: [r][c] at byte offset + stride · r + c.
fn emuLeft_As(offset: u32, stride: u32) -> array<i32, 512> {
  var m: array<i32, 512>;
  if (!emuBytesFit(offset, stride, 16u, 32u, ${words('As')}u)) { return m; }
  for (var r = 0u; r < 16u; r++) {
    for (var c = 0u; c < 32u; c++) {
      let at = (offset & ~3u) + (stride & ~3u) * r + c;
      m[r * 32u + c] = emuI8(As[at >> 2u], at & 3u);
    }
  }
  return m;
}

// subgroup_matrix_right<i8, 16, 32> (32 rows × 16 columns), column-major: [r][c] at byte offset + stride · c + r.
fn emuRight_Bs(offset: u32, stride: u32) -> array<i32, 512> {
  var m: array<i32, 512>;
  if (!emuBytesFit(offset, stride, 16u, 32u, ${words('Bs')}u)) { return m; }
  for (var r = 0u; r < 32u; r++) {
    for (var c = 0u; c < 16u; c++) {
      let at = (offset & ~3u) + (stride & ~3u) * c + r;
      m[r * 16u + c] = emuI8(Bs[at >> 2u], at & 3u);
    }
  }
  return m;
}

// result[m][n] + Σ_k left[m][k] · right[k][n] (16 × 16 × 32), in i32.
fn emuMultiplyAccumulate(l: array<i32, 512>, r: array<i32, 512>, acc: array<i32, 256>) -> array<i32, 256> {
  var out = acc;
  for (var m = 0u; m < 16u; m++) {
    for (var n = 0u; n < 16u; n++) {
      var s = out[m * 16u + n];
      for (var k = 0u; k < 32u; k++) { s += l[m * 32u + k] * r[k * 16u + n]; }
      out[m * 16u + n] = s;
    }
  }
  return out;
}

// subgroup_matrix_result<i32, 16, 16>, row-major: [r][c] to offset + stride · r + c; one invocation of the subgroup.
fn emuStore_Cs(offset: u32, value: array<i32, 256>, stride: u32) {
  if (subgroupElect()) {
    for (var r = 0u; r < 16u; r++) {
      for (var c = 0u; c < 16u; c++) { Cs[offset + stride * r + c] = value[r * 16u + c]; }
    }
  }
}
`;
