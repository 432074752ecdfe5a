/**
 * @module test/mcp/helpers
 * Drives the MCP shim the way an MCP client does: a separate `node mcp/flashpods-mcp.mjs`
 * process spoken to through the SDK's Client over stdio, with an explicit environment (the
 * child inherits none) and a fresh HOME so no real ~/.config/flashpods/config.json is read.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export const SHIM = fileURLToPath(new URL('../../mcp/flashpods-mcp.mjs', import.meta.url));

export interface Shim {
  client: Client;
  stderr(): string;
  close(): Promise<void>;
}

export async function startShim(env: Record<string, string>): Promise<Shim> {
  const home = mkdtempSync(join(tmpdir(), 'fp-mcp-home-'));
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [SHIM],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env },
    stderr: 'pipe',
    cwd: home,
  });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const client = new Client({ name: 'flashpods-test', version: '0.0.1' });
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}

export interface ToolAnswer {
  isError: boolean;
  body: any;
  text: string;
  progress: Array<{ progress: number; total?: number; message?: string; at: number }>;
}

/** Calls a tool; with `progress: true` it asks for progress notifications and records them. */
export async function callTool(shim: Shim, name: string, args: Record<string, unknown>, options: { progress?: boolean; timeoutMs?: number } = {}): Promise<ToolAnswer> {
  const progress: ToolAnswer['progress'] = [];
  const result = await shim.client.callTool({ name, arguments: args }, undefined, {
    timeout: options.timeoutMs ?? 60_000,
    ...(options.progress ? { onprogress: (p: { progress: number; total?: number; message?: string }) => progress.push({ ...p, at: Date.now() }), resetTimeoutOnProgress: true } : {}),
  });
  const content = result.content as Array<{ type: string; text?: string }>;
  const text = content.map((c) => c.text ?? '').join('');
  return { isError: result.isError === true, body: result.structuredContent, text, progress };
}
