// A partial (`//#include nf4_values`): the 16 NF4 values (src/core/nf4-format.ts, NF4_CODEBOOK) as exact hexadecimal
// f32 literals, for every shader that decodes NF4 codes. test/unit/nf4.test.ts holds them to the codebook.
const NF4_VALUES = array<f32, 16>(
  -0x1p0f, -0x1.647362p-1f, -0x1.0cd66p-1f, -0x1.94654p-2f, -0x1.23449ap-2f, -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0.0f,
  0x1.45f5fep-4f, 0x1.4995c6p-3f, 0x1.f809bap-3f, 0x1.5a0674p-2f, 0x1.c3497p-2f, 0x1.200f56p-1f, 0x1.722766p-1f, 0x1p0f);
