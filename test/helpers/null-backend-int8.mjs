// A child process for test/gpu/int8_matmul_sm.test.ts: everything that test asks of Dawn's null backend (which offers
// chromium-experimental-subgroup-matrix with allow_unsafe_apis and runs nothing), answered as one JSON line on stdout.
// Why a child: inside vitest's test processes Dawn's null backend aborts the whole process now and then while it makes
// these pipelines ("terminate called after throwing an instance of 'std::system_error': Invalid argument", or glibc's
// "The futex facility returned an unexpected error code"), taking every other test of the file and the tier's worker
// with it; the same steps in a plain Node process have not failed once here. A child that aborts fails one test, with
// its stderr.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('../../bin/raw-loader.mjs', import.meta.url);
const { create } = await import('webgpu');
const { KernelRegistry } = await import('../../src/engine/registry.ts');
const { shaderSources } = await import('../../src/engine/shaders.ts');
const { SUBGROUP_MATRIX_FEATURE } = await import('../../src/engine/subgroup-matrix.ts');
const { dawnProductShader } = await import('./dawn-subgroup-product.ts');

const VARIANTS = [{}, { NF4: true }, { NF4: true, DQ: true }, { NF4: true, BACKWARD: true }, { NF4: true, BACKWARD: true, DQ: true }];

const message = (e) => (e instanceof Error ? e.message : String(e));

const gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error("Dawn's null backend gave no adapter");
const featureOffered = adapter.features.has(SUBGROUP_MATRIX_FEATURE);
const device = await adapter.requestDevice({ requiredFeatures: [SUBGROUP_MATRIX_FEATURE, 'subgroups'] });

// Every variant's pipeline, as the engine's registry makes it.
const registry = new KernelRegistry(device, shaderSources);
const variants = [];
for (const defines of VARIANTS) {
  const error = await registry.prepare({ shader: 'int8_matmul_sm', defines }).then(
    () => null,
    (e) => message(e),
  );
  variants.push({ defines, error });
}

// Two broken copies, which must be refused: a wrong accumulator type, an oversized workgroup array. In an error scope:
// the refusals are expected, and so not reported as uncaptured errors.
const broken = new KernelRegistry(device, {
  ...shaderSources,
  wrong_type: shaderSources.int8_matmul_sm.replace('subgroup_matrix_result<i32, 16, 16>()', 'subgroup_matrix_result<f32, 16, 16>()'),
  too_big: shaderSources.int8_matmul_sm.replace('array<i32, 1024>;', 'array<i32, 2048>;'),
});
const refusals = {};
device.pushErrorScope('validation');
for (const shader of ['wrong_type', 'too_big']) {
  refusals[shader] = await broken.prepare({ shader }).then(
    () => null,
    (e) => message(e),
  );
}
await device.popErrorScope();

// Dawn's own product, its offsets and strides in words and (wrongly) in bytes: the compiler's errors for each.
const layout = [];
for (const major of ['row_major', 'col_major']) {
  for (const units of ['words', 'bytes']) {
    device.pushErrorScope('validation');
    const info = await device.createShaderModule({ code: dawnProductShader(major, units) }).getCompilationInfo();
    await device.popErrorScope();
    layout.push({ major, units, errors: info.messages.filter((m) => m.type === 'error').map((m) => m.message) });
  }
}

const result = {
  featureOffered,
  maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
  subgroupMaxSize: adapter.info.subgroupMaxSize,
  variants,
  refusals,
  layout,
};
device.destroy();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
