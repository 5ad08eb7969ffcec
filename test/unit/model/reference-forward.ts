// A float64 CPU forward pass of a Mistral model, written from the architecture in docs/mistral.md (not from any
// library): embeddings → per layer [RMSNorm → q/k/v (+LoRA) → RoPE (rotate_half) → causal GQA attention → o (+LoRA)
// → residual → RMSNorm → SwiGLU MLP (+LoRA) → residual] → final RMSNorm → lm_head. It is the test-side check of the
// fixtures (golden_lora, the ONNX oracle) and of the model loaders. Small models only: it is plain loops.

import { PROJECTIONS, type Projection } from '../../../src/core/mistral.ts';
import type { LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { moduleWeightName, type BaseCheckpoint } from '../../../src/model/checkpoint.ts';
import type { MistralConfig } from '../../../src/model/config.ts';

export interface RefLayer {
  inputNorm: Float64Array; // (C)
  postNorm: Float64Array; // (C)
  /** Linear weights [out, in], row-major. */
  w: Record<Projection, Float64Array>;
}

export interface RefWeights {
  config: MistralConfig;
  embed: Float64Array; // (V, C)
  layers: RefLayer[];
  norm: Float64Array; // (C)
  lmHead: Float64Array; // (V, C); the embedding when tied
}

export interface RefLora {
  scaling: number;
  /** Per layer, per adapted module: A (r, in) and B (out, r). */
  tensors: Partial<Record<Projection, { A: ArrayLike<number>; B: ArrayLike<number> }>>[];
  r: number;
}

export interface RefOutput {
  /** (B, T, V) */
  logits: Float64Array;
  /** hidden[0] = embeddings, hidden[l + 1] = after layer l, and the last one after the final norm (as HF's
   * output_hidden_states, where the final norm replaces the last layer's raw output). Each (B, T, C). */
  hidden: Float64Array[];
}

export async function loadRefWeights(ck: BaseCheckpoint, overrides: Map<string, ArrayLike<number>> = new Map()): Promise<RefWeights> {
  const c = ck.config;
  const get = async (name: string): Promise<Float64Array> => {
    const o = overrides.get(name);
    return Float64Array.from(o ?? (await ck.readFloat32(name)));
  };
  const layers: RefLayer[] = [];
  for (let l = 0; l < c.layers; l++) {
    const w = {} as Record<Projection, Float64Array>;
    for (const m of PROJECTIONS) w[m] = await get(moduleWeightName(l, m));
    layers.push({
      inputNorm: await get(`model.layers.${l}.input_layernorm.weight`),
      postNorm: await get(`model.layers.${l}.post_attention_layernorm.weight`),
      w,
    });
  }
  const embed = await get('model.embed_tokens.weight');
  return {
    config: c,
    embed,
    layers,
    norm: await get('model.norm.weight'),
    lmHead: c.tieWordEmbeddings ? embed : await get('lm_head.weight'),
  };
}

export function refLoraFromAdapter(a: LoraAdapter): RefLora {
  return { scaling: a.scaling, tensors: a.tensors, r: a.config.r };
}

/** y (n, out) = x (n, in) · Wᵀ, W (out, in). */
function linear(x: Float64Array, n: number, inF: number, w: ArrayLike<number>, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++) {
    const xo = i * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[xo + k] * w[wo + k];
      y[i * outF + o] = s;
    }
  }
  return y;
}

/** linear + LoRA: y = x Wᵀ + scaling · (x Aᵀ) Bᵀ. */
function project(x: Float64Array, n: number, inF: number, w: Float64Array, outF: number, lora: RefLora | undefined, layer: number, m: Projection): Float64Array {
  const y = linear(x, n, inF, w, outF);
  const p = lora?.tensors[layer]?.[m];
  if (lora && p) {
    const xa = linear(x, n, inF, p.A, lora.r);
    const d = linear(xa, n, lora.r, p.B, outF);
    for (let i = 0; i < y.length; i++) y[i] += lora.scaling * d[i];
  }
  return y;
}

function rmsnorm(x: Float64Array, n: number, C: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[i * C + c] ** 2;
    const inv = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) y[i * C + c] = x[i * C + c] * inv * w[c];
  }
  return y;
}

/** In place, non-interleaved (rotate_half) RoPE on (T, nHeads, hd) rows of one sequence. */
function rope(x: Float64Array, T: number, nHeads: number, hd: number, theta: number): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const ang = t * theta ** (-(2 * i) / hd);
      const cos = Math.cos(ang);
      const sin = Math.sin(ang);
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * hd;
        const a = x[o + i];
        const b = x[o + i + half];
        x[o + i] = a * cos - b * sin;
        x[o + i + half] = b * cos + a * sin;
      }
    }
  }
}

export function referenceForward(w: RefWeights, inputIds: number[][], lora?: RefLora): RefOutput {
  const c = w.config;
  const B = inputIds.length;
  const T = inputIds[0].length;
  if (!inputIds.every((r) => r.length === T)) throw new Error('ragged batch');
  const C = c.hidden;
  const hd = c.headDim;
  const nH = c.heads;
  const nKV = c.kvHeads;
  const group = nH / nKV;
  const I = c.intermediate;
  const V = c.vocabSize;
  const BT = B * T;
  const hidden: Float64Array[] = [];

  let x = new Float64Array(BT * C);
  inputIds.flat().forEach((id, i) => {
    if (!(id >= 0 && id < V)) throw new Error(`token id ${id} outside the vocabulary`);
    x.set(w.embed.subarray(id * C, (id + 1) * C), i * C);
  });
  hidden.push(x.slice());

  const scale = 1 / Math.sqrt(hd);
  for (let l = 0; l < c.layers; l++) {
    const L = w.layers[l];
    const n1 = rmsnorm(x, BT, C, L.inputNorm, c.rmsNormEps);
    const q = project(n1, BT, C, L.w.q_proj, nH * hd, lora, l, 'q_proj'); // (BT, nH*hd)
    const k = project(n1, BT, C, L.w.k_proj, nKV * hd, lora, l, 'k_proj'); // (BT, nKV*hd)
    const v = project(n1, BT, C, L.w.v_proj, nKV * hd, lora, l, 'v_proj'); // (BT, nKV*hd)
    const att = new Float64Array(BT * nH * hd); // (BT, nH*hd)
    for (let b = 0; b < B; b++) {
      const qs = q.subarray(b * T * nH * hd, (b + 1) * T * nH * hd);
      const ks = k.subarray(b * T * nKV * hd, (b + 1) * T * nKV * hd);
      rope(qs, T, nH, hd, c.ropeTheta);
      rope(ks, T, nKV, hd, c.ropeTheta);
      const scores = new Float64Array(T);
      for (let h = 0; h < nH; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < T; t++) {
          const lo = c.slidingWindow === null ? 0 : Math.max(0, t - c.slidingWindow + 1);
          let max = -Infinity;
          for (let s = lo; s <= t; s++) {
            let d = 0;
            const qo = ((b * T + t) * nH + h) * hd;
            const ko = ((b * T + s) * nKV + kh) * hd;
            for (let j = 0; j < hd; j++) d += q[qo + j] * k[ko + j];
            scores[s] = d * scale;
            if (scores[s] > max) max = scores[s];
          }
          let sum = 0;
          for (let s = lo; s <= t; s++) {
            scores[s] = Math.exp(scores[s] - max);
            sum += scores[s];
          }
          const oo = ((b * T + t) * nH + h) * hd;
          for (let s = lo; s <= t; s++) {
            const p = scores[s] / sum;
            const vo = ((b * T + s) * nKV + kh) * hd;
            for (let j = 0; j < hd; j++) att[oo + j] += p * v[vo + j];
          }
        }
      }
    }
    const o = project(att, BT, nH * hd, L.w.o_proj, C, lora, l, 'o_proj');
    const h1 = new Float64Array(BT * C);
    for (let i = 0; i < h1.length; i++) h1[i] = x[i] + o[i];
    const n2 = rmsnorm(h1, BT, C, L.postNorm, c.rmsNormEps);
    const g = project(n2, BT, C, L.w.gate_proj, I, lora, l, 'gate_proj');
    const u = project(n2, BT, C, L.w.up_proj, I, lora, l, 'up_proj');
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const d = project(g, BT, I, L.w.down_proj, C, lora, l, 'down_proj');
    x = new Float64Array(BT * C);
    for (let i = 0; i < x.length; i++) x[i] = h1[i] + d[i];
    if (l < c.layers - 1) hidden.push(x.slice());
  }
  const xf = rmsnorm(x, BT, C, w.norm, c.rmsNormEps);
  hidden.push(xf);
  return { logits: linear(xf, BT, C, w.lmHead, V), hidden };
}

/** log Σ exp over the last axis: (rows, V) → (rows). */
export function logsumexp(logits: Float64Array, V: number): Float64Array {
  const rows = logits.length / V;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, logits[r * V + i]);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[r * V + i] - max);
    out[r] = max + Math.log(s);
  }
  return out;
}

/** Mean cross-entropy, HF convention: logits[b, t] predicts labels[b, t + 1]; label -100 is ignored. */
export function causalLmLoss(logits: Float64Array, labels: number[][], V: number): number {
  const T = labels[0].length;
  const lse = logsumexp(logits, V);
  let sum = 0;
  let count = 0;
  labels.forEach((row, b) => {
    for (let t = 0; t + 1 < T; t++) {
      const y = row[t + 1];
      if (y === -100) continue;
      const r = b * T + t;
      sum += lse[r] - logits[r * V + y];
      count++;
    }
  });
  return sum / count;
}
