/**
 * @module mcp/server
 * The MCP server: the official SDK's McpServer with the tools of mcp/tools.ts registered on it
 * (the SDK publishes their names, JSON Schemas and annotations through tools/list).
 *
 * tools/call is answered here rather than by the SDK's default handler, for one reason: the
 * contract wants every failure — including bad arguments — as a tool error `{ error, message }`
 * carrying the contract's code (invalid_cpus, missing_command, invalid_artifact_name, …), where
 * the SDK would answer a generic "-32602 Input validation error" text. The handler below is the
 * SDK's own sequence (look up, validate against the same zod schema, run) with that mapping;
 * it is installed through the SDK's public `removeRequestHandler`/`setRequestHandler`.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CallToolRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';
import { ApiClient } from './api-client.ts';
import type { McpConfig } from './config.ts';
import { toErrorBody, ToolFailure, type ToolErrorBody } from './errors.ts';
import type { Log } from './log.ts';
import { Progress, type ToolExtra } from './progress.ts';
import { buildTools, type ToolContext, type ToolSpec } from './tools.ts';

export const SERVER_NAME = 'flashpods';
export const SERVER_VERSION = '0.1.0';

const INSTRUCTIONS =
  'Flashpods runs work in ephemeral, isolated containers on a remote host. spawn_worker runs a shell command (builds, test suites); ' +
  'spawn_sub_agent hands a coding task to an autonomous agent that pushes to a git branch. Files go in through files.local_path (uploaded, mounted at /work); ' +
  'results come back only through /artifacts (get_job_artifacts, download_artifact) and the log (get_job_output). ' +
  'Follow a job with wait_for_job or get_job_status; stop it with kill_job. Every failure is a tool error { error, message }.';

export interface ShimOptions {
  config: McpConfig;
  log: Log;
  cwd?: string;
  waitTickMs?: number;
}

export function createShimServer(options: ShimOptions): { server: McpServer; tools: ToolSpec[] } {
  const { config, log } = options;
  const ctx: ToolContext = { config, api: new ApiClient(config, log), log, cwd: options.cwd ?? process.cwd() };
  if (options.waitTickMs !== undefined) ctx.waitTickMs = options.waitTickMs;
  const tools = buildTools(ctx);
  const server = new McpServer({ name: SERVER_NAME, version: SERVER_VERSION }, { instructions: INSTRUCTIONS, capabilities: { logging: {} } });

  for (const tool of tools) {
    server.registerTool(tool.name, {
      title: tool.title,
      description: tool.description,
      inputSchema: tool.inputSchema,
      annotations: { title: tool.title, ...tool.annotations },
    }, (args: unknown, extra: unknown) => invoke(tool, args, extra as ToolExtra, log));
  }

  const byName = new Map(tools.map((t) => [t.name, t]));
  server.server.removeRequestHandler('tools/call');
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = byName.get(request.params.name);
    if (!tool) return errorResult({ error: 'unknown_tool', message: `No tool ${JSON.stringify(request.params.name)}; the tools are ${[...byName.keys()].join(', ')}.` });
    const parsed = await tool.inputSchema.safeParseAsync(request.params.arguments ?? {});
    if (!parsed.success) {
      const body = validationError(tool, parsed.error);
      log.info('tool call refused', { tool: tool.name, error: body.error, message: body.message });
      return errorResult(body);
    }
    return invoke(tool, parsed.data, extra as unknown as ToolExtra, log);
  });
  return { server, tools };
}

async function invoke(tool: ToolSpec, args: unknown, extra: ToolExtra, log: Log): Promise<CallToolResult> {
  const started = Date.now();
  const progress = new Progress(extra, log);
  try {
    const result = await tool.run(args, { extra, progress, signal: extra.signal });
    await progress.flush();
    log.info('tool call', { tool: tool.name, ms: Date.now() - started });
    return { content: [{ type: 'text', text: JSON.stringify(result, null, 2) }], structuredContent: result };
  } catch (err) {
    await progress.flush();
    const body = toErrorBody(err);
    if (err instanceof ToolFailure) log.info('tool call failed', { tool: tool.name, error: body.error, message: body.message, ms: Date.now() - started });
    else log.error('tool call crashed', { tool: tool.name, err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    return errorResult(body);
  }
}

function errorResult(body: ToolErrorBody): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(body, null, 2) }], structuredContent: { ...body }, isError: true };
}

/** Zod issues → one tool error, coded by the first offending argument. */
export function validationError(tool: ToolSpec, error: z.ZodError): ToolErrorBody {
  const issues = error.issues;
  const first = issues[0];
  const field = first?.path[0] !== undefined ? String(first.path[0]) : undefined;
  const code = (field && tool.fieldCodes[field]) || 'invalid_argument';
  const describe = (issue: z.core.$ZodIssue) => {
    const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'arguments';
    let message = issue.message;
    if (issue.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined && /received undefined/.test(message)) message = 'is required';
    else if (issue.code === 'unrecognized_keys') message = `unknown argument(s) ${issue.keys.join(', ')}`;
    return `${where}: ${message}`;
  };
  return {
    error: code,
    message: `Invalid arguments for ${tool.name}: ${issues.map(describe).join('; ')}.`,
    details: { fields: issues.map((i) => i.path.map(String).join('.')) },
  };
}
