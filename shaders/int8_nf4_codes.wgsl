// A partial (`//#include int8_nf4_codes`): how the int8 products (int8_matmul.wgsl, int8_matmul_sm.wgsl) read NF4
// codes. One copy, so that both kernels form the same weight codes.

// round(127 · NF4[c]): the 16 NF4 values on the int8 grid (the largest rounding, 0.47 of a step, is at −0.1848).
const I8_TABLE = array<i32, 16>(-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127);

// Where element j (0..7) of a code word sits: byte j/2, high nibble for even j (bitsandbytes' order).
fn nibble(word: u32, j: u32) -> u32 {
  return (word >> ((j >> 1u) * 8u + select(0u, 4u, (j & 1u) == 0u))) & 15u;
}
