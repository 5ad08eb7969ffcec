// The LoRA dropout hash, murmur3_x86_32 on u32 words (seed 0), shared by shaders/lora.wgsl (the standalone mask) and
// both GEMMs (the mask fused into the products) through `//#include dropout_hash`. A partial, not a kernel. Its CPU
// twin, bit for bit, is dropoutHash in src/engine/kernels/lora.ts.

fn rotl(v: u32, r: u32) -> u32 {
  return (v << r) | (v >> (32u - r));
}

fn murmurBlock(h: u32, word: u32) -> u32 {
  var k = word * 0xcc9e2d51u;
  k = rotl(k, 15u);
  k = k * 0x1b873593u;
  var s = h ^ k;
  s = rotl(s, 13u);
  return s * 5u + 0xe6546b64u;
}

fn murmurFinal(h0: u32, bytes: u32) -> u32 {
  var h = h0 ^ bytes;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}
