// 16-bit floats stored two per u32, low half first (the byte order of the Hub's safetensors files), read as f32.
// Included by the kernels that take bf16 or f16 weights as stored (//#include half); HALF_F16 in the including
// file's defines selects f16, else bf16.
// Both conversions are exact and built from integer operations only, so they need no shader-f16 and give the same
// bits on every adapter: a driver that flushes subnormal inputs cannot touch an f16 subnormal, which becomes a normal
// f32 here. bf16 is the top half of an f32; f16 is rebuilt from its fields (infinities and NaNs kept).

fn f16ToF32Bits(h: u32) -> u32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 31u;
  let m = h & 1023u;
  if (e == 0u) {
    if (m == 0u) { return s; }
    let pb = 31u - countLeadingZeros(m);
    return s | ((pb + 103u) << 23u) | (((m << (10u - pb)) & 1023u) << 13u);
  }
  if (e == 31u) { return s | 0x7f800000u | (m << 13u); }
  return s | ((e + 112u) << 23u) | (m << 13u);
}

// The low (high = false) or high half of word w.
fn halfToF32(w: u32, high: bool) -> f32 {
//#if HALF_F16
  return bitcast<f32>(f16ToF32Bits(select(w & 0xffffu, w >> 16u, high)));
//#else
  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, high));
//#endif
}
