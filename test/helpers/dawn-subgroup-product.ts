// Dawn's own end2end check of an i8 → i32 subgroup-matrix product, written out as WGSL, for
// test/gpu/int8_matmul_sm.test.ts and its null-backend child (test/helpers/null-backend-int8.mjs).

/**
 * Dawn's own end2end check of an i8 → i32 product (src/dawn/tests/end2end/SubgroupMatrixTests.cpp,
 * SubgroupMatrix_MatrixMatrixArithmeticTest, multiply without accumulator), for the 16 × 16 × 32 configuration: the
 * 16 × 32 left and the 32 × 16 right matrices' i8 values packed one after the other into an array<i32>, both in
 * `major` order, the i32 product stored in that order. `units` 'words': offsets and strides as Dawn's test gives them
 * (its i8 ones divided by 4: kLoadOffset = K · M / 4, kLeftStride = K / 4 …); 'bytes': as this kernel gave them
 * before 2026-11-30.
 */
export function dawnProductShader(major: 'row_major' | 'col_major', units: 'words' | 'bytes'): string {
  const [M, N, K] = [16, 16, 32];
  const q = units === 'words' ? 4 : 1;
  const col = major === 'col_major';
  return `enable chromium_experimental_subgroup_matrix;
enable subgroups;
@group(0) @binding(0) var<storage, read> inputs: array<i32, ${(K * M + N * K) / 4}>;
@group(0) @binding(1) var<storage, read_write> output: array<i32, ${M * N}>;
@compute @workgroup_size(128)
fn main(@builtin(subgroup_id) sg: u32) {
  if (sg != 0u) { return; }
  let l = subgroupMatrixLoad<subgroup_matrix_left<i8, ${K}, ${M}>, ${major}>(&inputs, 0u, ${(col ? M : K) / q}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<i8, ${N}, ${K}>, ${major}>(&inputs, ${(K * M) / q}u, ${(col ? K : N) / q}u);
  let acc = subgroupMatrixMultiplyAccumulate(l, r, subgroup_matrix_result<i32, ${N}, ${M}>());
  subgroupMatrixStore<${major}>(&output, 0u, acc, ${col ? M : N}u);
}
`;
}
