// Checks requests and responses against Replicate's OpenAPI description (test/fixtures/replicate/openapi.json), so the
// fake Replicate cannot drift from the real API: a request our client sends that Replicate would not accept, or an answer
// the fake gives that Replicate could not give, is reported.
//
// The description is OpenAPI 3.1, whose schemas are JSON Schema 2020-12 (ajv/dist/2020), except that it still uses
// OpenAPI 3.0's `nullable: true`; that is rewritten to `type: [T, "null"]` before compiling, which is what it means.

import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with `exports.default`; under Node's ESM interop the callable is on .default.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as typeof addFormatsModule;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  operationId: string;
  body: Map<string, ValidateFunction>;
  bodyRequired: boolean;
  responses: Map<string, Map<string, ValidateFunction>>;
  query: { name: string; required: boolean; validate: ValidateFunction }[];
}

/** `nullable: true` (OpenAPI 3.0) → a type union with null; everything else copied. */
function rewriteNullable(node: Json): Json {
  if (Array.isArray(node)) return node.map(rewriteNullable);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) if (k !== 'nullable') out[k] = rewriteNullable(v);
  if (node.nullable === true && typeof node.type === 'string') out.type = [node.type, 'null'];
  if (node.nullable === true && Array.isArray(node.enum)) out.enum = [...node.enum, null];
  return out;
}

export interface Violation {
  where: string;
  errors: string;
}

export class OpenApiValidator {
  private readonly ops: Operation[] = [];
  private readonly ajv: Ajv2020;

  constructor(path: string) {
    const doc = rewriteNullable(JSON.parse(readFileSync(path, 'utf8')) as Json) as JsonObject;
    // Annotations the description uses that JSON Schema does not define: known, so strict mode still catches typos.
    this.ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: false, strictTypes: false });
    this.ajv.addVocabulary(['example', 'x-order', 'x-feature-flag', 'x-cog-array-type', 'x-cog-array-display']);
    addFormats(this.ajv);
    this.ajv.addFormat('binary', true);
    const components = (doc.components ?? {}) as Record<string, Record<string, JsonObject>>;
    // The component schemas as $defs of one registered schema, so "#/components/schemas/X" becomes "openapi#/$defs/X".
    this.ajv.addSchema({ $id: 'openapi', $defs: this.resolveRefs(components.schemas ?? {}) } as object);
    const paths = doc.paths as Record<string, Record<string, JsonObject>>;
    for (const [template, item] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const compile = (schema: Json): ValidateFunction => this.ajv.compile(this.resolveRefs(schema) as object);
        const body = new Map<string, ValidateFunction>();
        const rb = op.requestBody as JsonObject | undefined;
        for (const [ct, media] of Object.entries((rb?.content ?? {}) as Record<string, JsonObject>)) body.set(ct, compile(media.schema ?? {}));
        const responses = new Map<string, Map<string, ValidateFunction>>();
        for (const [status, r] of Object.entries((op.responses ?? {}) as Record<string, JsonObject>)) {
          const byType = new Map<string, ValidateFunction>();
          for (const [ct, media] of Object.entries((r.content ?? {}) as Record<string, JsonObject>)) byType.set(ct, compile(media.schema ?? {}));
          responses.set(status, byType);
        }
        const query = ((op.parameters ?? []) as JsonObject[])
          .map((p) => (typeof p.$ref === 'string' ? components.parameters?.[p.$ref.split('/').pop() as string] ?? p : p))
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name as string, required: p.required === true, validate: compile(p.schema ?? {}) }));
        const regex = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
        this.ops.push({ method: method.toUpperCase(), template, regex, operationId: String(op.operationId), body, bodyRequired: rb?.required === true, responses, query });
      }
    }
    // A literal path beats a templated one (/models/x/y/versions vs /models/{o}/{n}): fewer braces first.
    this.ops.sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0));
  }

  /** Component $refs inlined as references into the registered 'openapi' schema (ajv resolves them). */
  private resolveRefs(node: Json): Json {
    if (Array.isArray(node)) return node.map((n) => this.resolveRefs(n));
    if (node === null || typeof node !== 'object') return node;
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/') ? `openapi#/$defs/${v.slice('#/components/schemas/'.length)}` : this.resolveRefs(v);
    }
    return out;
  }

  /** The operation a request is for, or null when the description has none. */
  operation(method: string, path: string): Operation | null {
    return this.ops.find((o) => o.method === method && o.regex.test(path)) ?? null;
  }

  private describe(v: ValidateFunction): string {
    return this.ajv.errorsText(v.errors, { separator: '; ' });
  }

  /** Problems with a request: unknown operation, bad query parameters, a body its schema rejects. */
  checkRequest(method: string, path: string, query: URLSearchParams, contentType: string | null, body: unknown): string[] {
    const op = this.operation(method, path);
    if (!op) return [`${method} ${path} is not an operation of Replicate's API`];
    const problems: string[] = [];
    for (const q of op.query) {
      const v = query.get(q.name);
      if (v === null) {
        if (q.required) problems.push(`query parameter ${q.name} is required`);
      } else if (!q.validate(v)) problems.push(`query ${q.name}: ${this.describe(q.validate)}`);
    }
    if (op.body.size === 0) return problems;
    if (body === undefined) {
      if (op.bodyRequired) problems.push(`${op.operationId} needs a request body`);
      return problems;
    }
    const type = (contentType ?? '').split(';')[0].trim();
    const validate = op.body.get(type);
    if (!validate) return [...problems, `${op.operationId} takes ${[...op.body.keys()].join(' or ')}, not ${type || 'no content type'}`];
    if (!validate(body)) problems.push(`${op.operationId} request body: ${this.describe(validate)}`);
    return problems;
  }

  /**
   * Problems with a response. A status the description does not list for the operation is checked against
   * `fallback` (the error shape Replicate answers with), and is a problem when there is none.
   */
  checkResponse(method: string, path: string, status: number, contentType: string, body: unknown, fallback?: ValidateFunction): string[] {
    const op = this.operation(method, path);
    if (!op) return [`${method} ${path} is not an operation of Replicate's API`];
    const byType = op.responses.get(String(status));
    const type = contentType.split(';')[0].trim();
    if (!byType) {
      if (!fallback) return [`${op.operationId} does not answer ${status}`];
      return fallback(body) ? [] : [`${op.operationId} ${status}: ${this.describe(fallback)}`];
    }
    const validate = byType.get(type);
    if (!validate) return byType.size === 0 ? [] : [`${op.operationId} ${status} is ${[...byType.keys()].join(' or ')}, not ${type}`];
    return validate(body) ? [] : [`${op.operationId} ${status}: ${this.describe(validate)}`];
  }

  /** A validator for a schema of our own (the error shape). */
  compile(schema: object): ValidateFunction {
    return this.ajv.compile(schema);
  }
}
