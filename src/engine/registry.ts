// The kernel registry: compiles each WGSL file once per set of defines, caches pipelines by
// (shader, entry point, defines, override constants), and reports compile errors with the file name and line.

import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { preprocessWgsl, type Defines } from './preprocess.ts';

export type OverrideConstants = Readonly<Record<string, number | boolean>>;

export interface KernelSpec {
  /** File name in shaders/ without `.wgsl`. */
  shader: string;
  entry?: string;
  defines?: Defines;
  constants?: OverrideConstants;
}

function stableKey(o: Readonly<Record<string, unknown>> | undefined): string {
  if (!o) return '';
  return Object.keys(o)
    .sort()
    .map((k) => `${k}=${String(o[k])}`)
    .join(',');
}

export class KernelRegistry {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  constructor(
    private readonly device: GPUDevice,
    private readonly sources: Readonly<Record<string, string>>,
  ) {}

  get shaderNames(): string[] {
    return Object.keys(this.sources);
  }

  /** The keys (shader|entry|defines|constants) of the pipelines made so far: which variants a piece of work ran. */
  get pipelineKeys(): string[] {
    return [...this.pipelines.keys()];
  }

  private source(shader: string): string {
    const src = this.sources[shader];
    if (src === undefined) throw new FinetuneError('internal', `no shader named "${shader}" in shaders/`);
    return src;
  }

  private module(shader: string, defines: Defines | undefined): GPUShaderModule {
    const key = `${shader}|${stableKey(defines)}`;
    let m = this.modules.get(key);
    if (!m) {
      const code = preprocessWgsl(this.source(shader), defines ?? {}, shader, (name) => this.sources[name]);
      m = this.device.createShaderModule({ label: `${shader}.wgsl${defines ? ` [${stableKey(defines)}]` : ''}`, code });
      this.modules.set(key, m);
    }
    return m;
  }

  /**
   * Compiles a shader (with the given defines) and throws a `shader-compile` error naming `file.wgsl:line:col`
   * for every error the compiler reports. Call once per shader at start-up; `pipeline` is then synchronous.
   */
  async check(shader: string, defines?: Defines): Promise<void> {
    const m = this.module(shader, defines);
    const info = await m.getCompilationInfo();
    const errors = info.messages.filter((msg) => msg.type === 'error');
    if (errors.length) {
      const text = errors.map((e) => `${shader}.wgsl:${e.lineNum}:${e.linePos}: ${e.message}`).join('\n');
      throw new FinetuneError('shader-compile', text, { shader, errors: errors.length });
    }
  }

  /** Compiles a pipeline asynchronously so that pipeline errors (bad overrides, limits) are reported, then caches it. */
  async prepare(spec: KernelSpec): Promise<GPUComputePipeline> {
    await this.check(spec.shader, spec.defines);
    const key = this.key(spec);
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    try {
      const p = await this.device.createComputePipelineAsync(this.descriptor(spec));
      this.pipelines.set(key, p);
      return p;
    } catch (e) {
      throw new FinetuneError('shader-compile', `${spec.shader}.wgsl entry "${spec.entry ?? 'main'}": ${thrownMessage(e)}`);
    }
  }

  /** The cached pipeline, created synchronously on first use. */
  pipeline(spec: KernelSpec): GPUComputePipeline {
    const key = this.key(spec);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.device.createComputePipeline(this.descriptor(spec));
      this.pipelines.set(key, p);
    }
    return p;
  }

  private key(spec: KernelSpec): string {
    return `${spec.shader}|${spec.entry ?? 'main'}|${stableKey(spec.defines)}|${stableKey(spec.constants)}`;
  }

  private descriptor(spec: KernelSpec): GPUComputePipelineDescriptor {
    const entry = spec.entry ?? 'main';
    const constants: Record<string, number> = {};
    for (const [k, v] of Object.entries(spec.constants ?? {})) constants[k] = typeof v === 'boolean' ? Number(v) : v;
    return {
      label: `${spec.shader}:${entry}${spec.constants ? ` {${stableKey(spec.constants)}}` : ''}`,
      layout: 'auto',
      compute: { module: this.module(spec.shader, spec.defines), entryPoint: entry, constants },
    };
  }
}
