import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI } from '../../../actors/api/openapi.ts';
import { createJob, makeUpload, startStack, waitForJob, type Stack } from '../../support/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ FLASHPODS_CAPACITY_CPUS: '2', FLASHPODS_CAPACITY_MEMORY_GB: '4' });
});
afterAll(async () => {
  await stack?.stop();
});

const ajv = new Ajv2020({ strict: false, allErrors: true });
(formats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addSchema({ $id: 'openapi', components: OPENAPI.components } as object);

type Operation = { responses: Record<string, { content?: Record<string, { schema: object }> }> };

function operationFor(method: string, path: string): { template: string; op: Operation } {
  for (const [template, ops] of Object.entries(OPENAPI.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    const op = (ops as Record<string, Operation>)[method.toLowerCase()];
    if (pattern.test(path.split('?')[0]!) && op) return { template, op };
  }
  throw new Error(`${method} ${path} is not in the OpenAPI document`);
}

const seen = new Set<string>();

async function check(method: string, path: string, init: RequestInit & { auth?: boolean } = {}): Promise<Response> {
  const res = await stack.server.fetch(path, { ...init, method });
  const { template, op } = operationFor(method, path);
  const documented = op.responses[String(res.status)];
  expect(documented, `${method} ${template} answered ${res.status}, which the document does not list`).toBeDefined();
  seen.add(`${method} ${template} ${res.status}`);
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
  if (type === 'application/json' && documented!.content?.['application/json']) {
    const schema = JSON.parse(JSON.stringify(documented!.content['application/json'].schema).replaceAll('"#/components', '"openapi#/components'));
    const body = await res.clone().json();
    const valid = ajv.validate(schema, body);
    expect(valid, `${method} ${template} ${res.status}: ${ajv.errorsText()}\n${JSON.stringify(body)}`).toBe(true);
  } else if (res.status !== 204) {
    expect(Object.keys(documented!.content ?? {}), `${method} ${template} ${res.status} content type ${type}`).toContain(type);
  }
  return res;
}

describe('the OpenAPI document', () => {
  it('is served at /openapi.json', async () => {
    const res = await check('GET', '/openapi.json');
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
  });

  it('is strict enough to catch a response that breaks it', () => {
    const schema = JSON.parse(JSON.stringify((OPENAPI.paths['/jobs/{id}'].get.responses as any)['404'].content['application/json'].schema).replaceAll('"#/components', '"openapi#/components'));
    expect(ajv.validate(schema, { error: 'job_not_found', message: 'No job.' })).toBe(true);
    expect(ajv.validate(schema, { error: 'made_up_code', message: 'No job.' })).toBe(false);
    expect(ajv.validate(schema, { error: 'job_not_found' })).toBe(false);
  });

  it('describes what every route really answers', async () => {
    const json = { 'content-type': 'application/json' };
    await check('GET', '/health', { auth: false });
    await check('GET', '/metrics');
    await check('GET', '/jobs', { headers: { authorization: 'Bearer nope' }, auth: false });
    await check('GET', '/jobs');
    await check('GET', '/jobs?status=bogus');

    const up = makeUpload(stack.home, { f: 'x' });
    await check('GET', `/uploads/${up}`);
    await check('GET', '/uploads/bad-id');
    await check('GET', '/uploads/upload_000000000000');
    await check('POST', `/uploads/${up}/finalize`);
    await check('POST', `/uploads/${up}/finalize`);
    const gone = makeUpload(stack.home, { g: 'y' });
    await check('DELETE', `/uploads/${gone}`);
    await check('POST', `/uploads/${gone}/finalize`);

    await check('POST', '/jobs', { body: '{', headers: json });
    await check('POST', '/jobs', { body: JSON.stringify({ type: 'robot' }), headers: json });
    await check('POST', '/jobs', { body: JSON.stringify({ type: 'worker', command: 'true', cpus: 100, memory_gb: 100 }), headers: json });
    const created = await check('POST', '/jobs', { body: JSON.stringify({ type: 'worker', command: 'echo out; echo a > /artifacts/a; mkdir /artifacts/d', files_id: up, cpus: 1, memory_gb: 1, client_job_id: '9d3c2b1a-0f4e-4d5c-8b7a-6e5f4d3c2b1a' }), headers: json });
    const id = ((await created.json()) as any).job_id;
    await check('POST', '/jobs', { body: JSON.stringify({ type: 'worker', command: 'true', client_job_id: '9d3c2b1a-0f4e-4d5c-8b7a-6e5f4d3c2b1a' }), headers: json });
    await check('GET', `/jobs/${id}/artifacts`);
    await waitForJob(stack.server, id);
    await check('GET', `/jobs/${id}?wait=1`);
    await check('GET', `/jobs/${id}/output?tail=5`);
    await check('GET', `/jobs/${id}/output/stream`);
    await check('GET', `/jobs/${id}/artifacts`);
    await check('GET', `/jobs/${id}/artifacts/a`);
    await check('GET', `/jobs/${id}/artifacts/a`, { headers: { range: 'bytes=0-0' } });
    await check('GET', `/jobs/${id}/artifacts/a`, { headers: { range: 'bytes=9-9' } });
    await check('GET', `/jobs/${id}/artifacts/d`);
    await check('GET', `/jobs/${id}/artifacts/missing`);
    await check('GET', `/jobs/${id}/artifacts/%20x`);
    await check('DELETE', `/jobs/${id}`);
    await check('GET', '/jobs/job_nnnnnnnnnnnnnnnn');

    const long = (await createJob(stack.server, { type: 'worker', command: 'sleep 30', cpus: 1, memory_gb: 1 })).body.job_id;
    await check('GET', `/jobs/${long}/artifacts`);
    await check('DELETE', `/jobs/${long}`);
    await waitForJob(stack.server, long, { exitCode: true });

    // Every documented operation was exercised at least once.
    const operations = Object.entries(OPENAPI.paths).flatMap(([template, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${template}`));
    for (const operation of operations) expect([...seen].some((s) => s.startsWith(`${operation} `)), operation).toBe(true);
  });
});
