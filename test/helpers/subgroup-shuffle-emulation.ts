// Runs shaders/attention_flash.wgsl's forward as if the adapter's subgroups were `size` invocations wide, on any
// adapter: `enable subgroups;` goes, the two subgroup builtins become values (subgroups are consecutive blocks of
// `size` invocations; a lane number per invocation from `lane`, by default its place in the block), and
// subgroupShuffleXor becomes a stand-in through workgroup memory that does what WGSL says it does: lane L of a
// subgroup receives the value of the lane numbered L ^ mask in the same subgroup. Everything else of the kernel runs as
// written, so the row max's shuffle-and-partials logic can be checked for every subgroup width on SwiftShader, whose
// own subgroups are 4 wide.

export interface ShuffleEmulation {
  /** Invocations per emulated subgroup: a power of two from 1 to 128 (the workgroup). */
  size: number;
  /** WGSL expression for the lane of invocation `t` (u32) within its subgroup; default `t % size`. */
  lane?: string;
}

/** The shader's text with its subgroup operations emulated; throws if a form it expects is missing or one is left. */
export function emulateSubgroupShuffles(source: string, e: ShuffleEmulation): string {
  if (!(e.size >= 1 && e.size <= 128 && (e.size & (e.size - 1)) === 0)) throw new Error(`emulated subgroup size ${e.size}: a power of two ≤ 128`);
  const lane = e.lane ?? `t % ${e.size}u`;
  const forms: [RegExp, string][] = [
    [/^enable subgroups;$/m, '// (subgroups emulated)'],
    [/, @builtin\(subgroup_size\) sgSize: u32\) \{/, `) {\n  let sgSize = ${e.size}u;\n  let lane = ${lane};`],
    [/subgroupShuffleXor\(t, (\w+)\)/g, 'emuShuffleXorU32(t, $1, t, lane, sgSize)'],
    [/subgroupShuffleXor\((\w+), (\w+)\)/g, 'emuShuffleXor($1, $2, t, lane, sgSize)'],
  ];
  let text = source;
  for (const [pattern, replacement] of forms) {
    if (!pattern.test(text)) throw new Error(`the shader no longer has ${pattern.source}: update the emulation`);
    text = text.replace(pattern, replacement);
  }
  const code = text.replace(/\/\/.*$/gm, '');
  const left = /subgroup[A-Z]\w*\(|subgroup_size|subgroup_invocation_id/.exec(code);
  if (left) throw new Error(`a subgroup operation the emulation does not know: ${code.slice(left.index, left.index + 60)}`);
  return `${text}\n${SHUFFLE}`;
}

// One slot per invocation, by subgroup and lane: slot (t − t mod size) + lane. Each value takes a round trip between
// barriers, so every invocation must call these together (they are called in the workgroup's uniform control flow).
const SHUFFLE = `
var<workgroup> emuSlots: array<f32, 128>;
var<workgroup> emuSlotsU32: array<u32, 128>;

fn emuShuffleXorU32(x: u32, mask: u32, t: u32, lane: u32, size: u32) -> u32 {
  workgroupBarrier();
  emuSlotsU32[t - t % size + lane] = x;
  workgroupBarrier();
  return emuSlotsU32[t - t % size + (lane ^ mask)];
}

fn emuShuffleXor(x: vec4f, mask: u32, t: u32, lane: u32, size: u32) -> vec4f {
  let base = t - t % size;
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    workgroupBarrier();
    emuSlots[base + lane] = x[c];
    workgroupBarrier();
    r[c] = emuSlots[base + (lane ^ mask)];
  }
  return r;
}
`;
