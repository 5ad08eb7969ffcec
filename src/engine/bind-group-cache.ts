// Bind groups kept between dispatches that bind the same things.
//
// Recording a dispatch costs the host ≈ 21 µs in Dawn (measured with `finetune bench dispatch`), and creating its
// bind group is ≈ 12–17 µs of that: a whole Mistral-7B step records ≈ 3,000 dispatches. A training step records the
// same dispatches with the same buffers every time (and, since the uniform arena is filled from slot 0 after each
// submit, at the same uniform offsets), so a bind group made once can be bound again: a bind group is an immutable
// description of its bindings, and binding an identical one is the same work on the GPU to the bit.
//
// Keyed by the pipeline and, per entry, the buffer (a number per buffer object), offset and size. A buffer's groups are
// dropped when it is destroyed (GpuContext.destroy calls `forget`), so a group never names a destroyed buffer and
// nothing leaks; past `maxEntries` groups everything is dropped and made again as needed.

export class BindGroupCache {
  private readonly groups = new Map<string, { group: GPUBindGroup; buffers: readonly number[] }>();
  private readonly keysByBuffer = new Map<number, Set<string>>();
  private readonly ids = new WeakMap<object, number>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  private nextId = 1;
  /** Bind groups made and found since creation (the bench and the tests read them). */
  created = 0;
  reused = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly maxEntries = 32_768,
  ) {}

  get size(): number {
    return this.groups.size;
  }

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }

  /** The pipeline's bind group layout 0, asked of Dawn once per pipeline (each call makes a new wrapper). */
  private layout(pipeline: GPUComputePipeline): GPUBindGroupLayout {
    let l = this.layouts.get(pipeline);
    if (!l) {
      l = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, l);
    }
    return l;
  }

  /** A bind group of layout 0 of `pipeline` with these buffer bindings, made now or earlier. */
  get(pipeline: GPUComputePipeline, entries: readonly GPUBufferBinding[], label: string): GPUBindGroup {
    const buffers = entries.map((e) => this.idOf(e.buffer));
    let key = String(this.idOf(pipeline));
    for (let i = 0; i < entries.length; i++) key += `|${buffers[i]}:${entries[i].offset ?? 0}:${entries[i].size ?? -1}`;
    const found = this.groups.get(key);
    if (found) {
      this.reused++;
      return found.group;
    }
    if (this.groups.size >= this.maxEntries) this.clear();
    const group = this.device.createBindGroup({ label, layout: this.layout(pipeline), entries: entries.map((resource, binding) => ({ binding, resource })) });
    this.groups.set(key, { group, buffers });
    for (const b of buffers) {
      let keys = this.keysByBuffer.get(b);
      if (!keys) this.keysByBuffer.set(b, (keys = new Set()));
      keys.add(key);
    }
    this.created++;
    return group;
  }

  /** Drops every group that binds `buffer` (it is being destroyed). */
  forget(buffer: GPUBuffer): void {
    const id = this.ids.get(buffer);
    if (id === undefined) return;
    const keys = this.keysByBuffer.get(id);
    if (!keys) return;
    this.keysByBuffer.delete(id);
    for (const key of keys) {
      const g = this.groups.get(key);
      if (!g) continue;
      this.groups.delete(key);
      for (const other of g.buffers) if (other !== id) this.keysByBuffer.get(other)?.delete(key);
    }
  }

  clear(): void {
    this.groups.clear();
    this.keysByBuffer.clear();
  }
}
