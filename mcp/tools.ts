/**
 * @module mcp/tools
 * The nine tools: their input schemas (zod, with the defaults and bounds of spec/mcp.md and the
 * contract's limits from actors/contract), their descriptions (what a job's container gets and
 * how to get results back), annotations, and what each does against the API.
 * Each returns a plain object (sent as JSON text and as structuredContent) or throws a
 * ToolFailure; mcp/server.ts turns that into an MCP result.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ArtifactListResponse, CreateJobBody, JobCreatedResponse, JobListResponse, JobResponse, OutputResponse } from '../actors/contract/api-schemas.ts';
import { MAX_ARTIFACT_NAME } from '../actors/contract/artifacts.ts';
import {
  DEFAULT_WORKER_IMAGE, ID_PATTERNS, isTerminal, LIST_LIMIT, MAX_COMMAND_CHARS, MAX_CONTEXT_CHARS, MAX_IMAGE_CHARS, MAX_TASK_CHARS,
  OUTPUT_TAIL, QUEUE_TIMEOUT_MINUTES, STATUS_FILTERS, TIMEOUT_MINUTES, TYPE_LIMITS, type JobState,
} from '../actors/contract/jobs.ts';
import { isValidGitRef } from '../actors/scheduler/job-request.ts';
import type { ApiClient, RetryNotice } from './api-client.ts';
import { sleep } from './api-client.ts';
import type { McpConfig } from './config.ts';
import { checkArtifactName, downloadArtifact, resolveSaveTo } from './downloads.ts';
import { ToolFailure, type ToolErrorCode } from './errors.ts';
import type { Log } from './log.ts';
import type { Progress, ToolExtra } from './progress.ts';
import { formatBytes, uploadDirectory, discardUpload, type UploadResult } from './uploads.ts';

export interface ToolContext {
  config: McpConfig;
  api: ApiClient;
  log: Log;
  /** Relative files.local_path values resolve against this (the shim's working directory). */
  cwd: string;
  /** How often wait_for_job reports log lines while it waits. */
  waitTickMs?: number;
}

export interface CallContext {
  extra: ToolExtra;
  progress: Progress;
  signal: AbortSignal;
}

export interface ToolAnnotations {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

export interface ToolSpec {
  name: string;
  title: string;
  description: string;
  inputSchema: z.ZodObject;
  annotations: ToolAnnotations;
  /** The error code reported when a given top-level argument is invalid. */
  fieldCodes: Record<string, ToolErrorCode>;
  run(args: any, call: CallContext): Promise<Record<string, unknown>>;
}

// ---------------------------------------------------------------- shared schema pieces

const WAIT_TIMEOUT = { min: 1, max: 3600, default: 50 } as const;

const jobId = z.string().regex(ID_PATTERNS.job, 'job ids look like job_ followed by 16 lowercase letters or digits')
  .describe('The job id returned by spawn_worker / spawn_sub_agent or listed by list_jobs (job_…).');

const intIn = (min: number, max: number, def: number, what: string) =>
  z.number().int(`${what} must be a whole number`).min(min, `${what} must be at least ${min}`).max(max, `${what} must be at most ${max}`).default(def);

const filesSchema = z.object({
  local_path: z.string().min(1, 'files.local_path must not be empty')
    .describe('Directory on THIS machine to upload, preferably absolute (relative paths resolve against the MCP server\'s working directory). Its contents appear at /work.'),
  exclude: z.array(z.string().min(1).max(1024).refine((p) => !/[\r\n\0]/.test(p), 'exclude patterns are single lines')).max(100).optional()
    .describe('Extra rsync exclude patterns, added to the defaults (.git, node_modules, target, __pycache__, .venv), e.g. ["dist", "*.log"].'),
}).describe('Upload a local directory for the job (rsync). Omit to run with no /work.');

const CONTAINER_FACTS =
  'Output: /artifacts is the ONLY way results come back — every top-level file or directory there becomes an artifact (a directory downloads as a .tar); ' +
  'limits 1 GB per file, 2 GB and 200 entries per job; artifacts are deleted 1 hour after the job ends, logs after 24 hours. Everything else dies with the container. ' +
  'No secrets travel with a job: your API token and environment never reach the container. ' +
  'Network: outbound internet works; the Flashpods API and its rsync port are firewalled from containers, so a job can never start other jobs. ' +
  'stdout and stderr go to the job log (50 MB cap). Hard CPU and memory limits (out of memory → failed with oom_killed). ' +
  'After timeout_minutes the job gets SIGTERM, 10 s later SIGKILL, and ends timed_out.';

const HOW_TO_FOLLOW =
  'Returns at once with job_id and status. Then: wait_for_job (blocks until it ends, streaming log lines as progress) or get_job_status; ' +
  'get_job_output for the log; get_job_artifacts then download_artifact for results. ' +
  'When the host is full the job waits in its queue (status queued, queue_position; wait_for_job covers the wait) unless queue is false; ' +
  'a busy API is retried with backoff before the call reports an error; retries never create a second job.';

/** spawn_worker and spawn_sub_agent: wait in the host's queue rather than fail when it is full. */
const queueFields = {
  queue: z.boolean().default(true)
    .describe('true (default): when the host is full the job waits in its FIFO queue (status queued, with queue_position) and starts as soon as it fits. false: fail at once with insufficient_resources instead.'),
  queue_timeout_minutes: intIn(QUEUE_TIMEOUT_MINUTES.min, QUEUE_TIMEOUT_MINUTES.max, QUEUE_TIMEOUT_MINUTES.default, 'queue_timeout_minutes')
    .describe(`How long it may wait queued before it ends expired, ${QUEUE_TIMEOUT_MINUTES.min}–${QUEUE_TIMEOUT_MINUTES.max} minutes (default ${QUEUE_TIMEOUT_MINUTES.default}).`),
};

const NEXT_AFTER_SPAWN =
  'wait_for_job (blocks until it ends) or get_job_status; get_job_output for the log; get_job_artifacts then download_artifact for results.';

// ---------------------------------------------------------------- helpers

/** GET /jobs/:id's answer (contract/api-schemas.ts). */
type JobView = JobResponse;

/** get_job_status's answer: status, exit_code when terminal, elapsed_seconds, error. */
export function statusView(job: JobView): Record<string, unknown> {
  const terminal = isTerminal(job.status);
  const elapsed = job.elapsed_seconds ?? job.duration_seconds ?? Math.max(0, Math.round((Date.now() - Date.parse(job.created_at)) / 1000));
  const view: Record<string, unknown> = {
    job_id: job.id,
    type: job.type,
    status: job.status,
    terminal,
    elapsed_seconds: elapsed,
  };
  if (terminal) view.exit_code = job.exit_code ?? null;
  view.error = job.error ?? null;
  for (const key of ['image', 'command', 'task', 'git_branch', 'cpus', 'memory_gb', 'timeout_minutes', 'created_at', 'started_at', 'completed_at', 'actual_runtime_seconds',
    'queue_position', 'queue_wait_seconds', 'backfilled'] as const) {
    if (job[key] !== undefined && job[key] !== null) view[key] = job[key];
  }
  view.next = terminal
    ? 'get_job_output for the log; get_job_artifacts then download_artifact for files the job wrote to /artifacts (deleted 1 h after the end).'
    : 'wait_for_job to block until it ends (log lines arrive as progress), or get_job_output to look at the log so far; kill_job to stop it.';
  return view;
}

export const formatDelay = (ms: number) => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`);

/** Retries are logged by the API client; the agent hears of them as progress (when it asked). */
const retryNote = (call: CallContext, what: string) => (n: RetryNotice | string) => {
  const message = typeof n === 'string' ? n : `${what}: ${n.why}; attempt ${n.attempts + 1} in ${formatDelay(n.delayMs)}`;
  call.progress.report(progressValue(call), undefined, message, true);
};

/** Keeps a call's progress monotone across phases (upload 0–90, job creation 90–100). */
const phase = new WeakMap<CallContext, number>();
const progressValue = (call: CallContext) => phase.get(call) ?? 0;

async function createJob(ctx: ToolContext, call: CallContext, body: CreateJobBody, files: { local_path: string; exclude?: string[] | undefined } | undefined) {
  let upload: UploadResult | undefined;
  if (files) {
    upload = await uploadDirectory(files, {
      config: ctx.config, api: ctx.api, log: ctx.log, cwd: ctx.cwd, signal: call.signal,
      onProgress: (percent, message) => {
        const value = percent * 0.9;
        phase.set(call, value);
        call.progress.report(value, 100, message, percent === 100);
      },
      onRetry: retryNote(call, 'upload'),
    });
    phase.set(call, 92);
    call.progress.report(92, 100, `uploaded ${formatBytes(upload.size_bytes)} in ${upload.file_count} files as ${upload.upload_id}; creating the job`, true);
  }
  // One client_job_id per tool call, reused by every retry: a lost answer never makes two jobs.
  const request = { ...body, client_job_id: randomUUID(), ...(upload ? { files_id: upload.upload_id } : {}) };
  try {
    const answer = await ctx.api.json<JobCreatedResponse>('POST', '/jobs', {
      body: request, signal: call.signal, onRetry: retryNote(call, 'create job'),
    });
    const position = answer.body.queue_position;
    call.progress.report(100, 100, `job ${answer.body.job_id} ${answer.body.status}${position === undefined ? '' : ` at position ${position} of the host's queue`}`, true);
    const result: Record<string, unknown> = {
      job_id: answer.body.job_id,
      status: answer.body.status,
      type: body.type,
      client_job_id: request.client_job_id,
      ...(position === undefined ? {} : { queue_position: position }),
    };
    if (answer.attempts > 1) result.attempts = answer.attempts;
    if (answer.body.clamped) result.clamped = answer.body.clamped;
    if (upload) result.upload = upload;
    result.next = NEXT_AFTER_SPAWN;
    return result;
  } catch (err) {
    if (upload) await discardUpload(ctx.api, upload.upload_id, ctx.log);
    throw err;
  }
}

async function getJob(ctx: ToolContext, call: CallContext, id: string, waitSeconds = 0): Promise<JobView> {
  const answer = await ctx.api.json<JobView>('GET', `/jobs/${id}`, {
    query: waitSeconds > 0 ? { wait: waitSeconds } : undefined,
    timeoutMs: waitSeconds * 1000 + ctx.config.requestTimeoutMs,
    signal: call.signal,
    onRetry: retryNote(call, 'job status'),
  });
  if (!answer.body || typeof answer.body.status !== 'string') throw new ToolFailure('invalid_response', `GET /jobs/${id} answered without a status.`);
  return answer.body;
}

/** The last `n` lines of `text`. */
const lastLines = (text: string, n: number) => text.split('\n').filter((l) => l !== '').slice(-n);

// ---------------------------------------------------------------- the tools

export function buildTools(ctx: ToolContext): ToolSpec[] {
  const { api, log, config } = ctx;
  const worker = TYPE_LIMITS.worker;
  const agent = TYPE_LIMITS.agent;

  const spawnWorker: ToolSpec = {
    name: 'spawn_worker',
    title: 'Run a command in a fresh container',
    description:
      'Run a shell command in a fresh, isolated container on the Flashpods host and get a job id back — for builds, test suites and other heavy or slow work, ' +
      'so you can keep working while it runs. Examples: "cd /work && CARGO_TARGET_DIR=/tmp/target cargo build --release && cp /tmp/target/release/app /artifacts/", ' +
      '"cp -r /work /tmp/src && cd /tmp/src && npm ci && npm test", "cd /work && pytest -x -p no:cacheprovider 2>&1 | tee /artifacts/pytest.log". ' +
      'Input: files.local_path (a directory on this machine) is uploaded with rsync and mounted at /work READ-ONLY — build in a copy or in /tmp; ' +
      '.git, node_modules, target, __pycache__ and .venv are left out by default (add more with files.exclude). The command runs as `/bin/sh -c <command>` ' +
      'in the image\'s working directory (cd /work first). Images pre-pulled on the host: ubuntu:22.04 (default), rust:latest, node:20, python:3.12, alpine:latest; others are pulled at start. ' +
      `${CONTAINER_FACTS} ${HOW_TO_FOLLOW}`,
    inputSchema: z.object({
      command: z.string().min(1, 'command must not be empty').max(MAX_COMMAND_CHARS, `command must be at most ${MAX_COMMAND_CHARS} characters`)
        .refine((c) => c.trim() !== '', 'command must not be blank')
        .describe('Shell command, run as /bin/sh -c <command>. Write results to /artifacts.'),
      files: filesSchema.optional(),
      image: z.string().min(1).max(MAX_IMAGE_CHARS).optional().meta({ default: DEFAULT_WORKER_IMAGE })
        .describe(`Container image, [registry/]name[:tag]. Default ${DEFAULT_WORKER_IMAGE} (the host's default image).`),
      cpus: intIn(1, worker.maxCpus, worker.defaultCpus, 'cpus').describe(`CPU cores, 1–${worker.maxCpus} (default ${worker.defaultCpus}); a hard throttle.`),
      memory_gb: intIn(1, worker.maxMemoryGb, worker.defaultMemoryGb, 'memory_gb').describe(`Memory in GB, 1–${worker.maxMemoryGb} (default ${worker.defaultMemoryGb}); exceeding it kills the job (oom_killed).`),
      timeout_minutes: intIn(TIMEOUT_MINUTES.min, TIMEOUT_MINUTES.max, worker.defaultTimeoutMinutes, 'timeout_minutes')
        .describe(`Wall-clock limit in minutes, ${TIMEOUT_MINUTES.min}–${TIMEOUT_MINUTES.max} (default ${worker.defaultTimeoutMinutes}).`),
      need_github_token: z.boolean().default(false)
        .describe('true: the job gets the HOST\'s GitHub token as GITHUB_TOKEN (e.g. to clone private repositories). Only images built FROM flashpods/worker:latest ' +
          '(whose entrypoint trades the container\'s identity for the token before the command) receive it; other images just run the command. Default false: no secret reaches the job.'),
      ...queueFields,
    }),
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    fieldCodes: {
      command: 'missing_command', image: 'invalid_image', cpus: 'invalid_cpus', memory_gb: 'invalid_memory', timeout_minutes: 'invalid_timeout', files: 'invalid_argument',
      need_github_token: 'invalid_argument', queue: 'invalid_argument', queue_timeout_minutes: 'invalid_queue_timeout',
    },
    async run(args, call) {
      const body: CreateJobBody = {
        type: 'worker', command: args.command, cpus: args.cpus, memory_gb: args.memory_gb, timeout_minutes: args.timeout_minutes, need_github_token: args.need_github_token,
        queue: args.queue, queue_timeout_minutes: args.queue_timeout_minutes,
      };
      if (args.image !== undefined) body.image = args.image;
      return createJob(ctx, call, body, args.files);
    },
  };

  const spawnSubAgent: ToolSpec = {
    name: 'spawn_sub_agent',
    title: 'Delegate a coding task to a sub-agent',
    description:
      'Hand a self-contained coding task to an autonomous coding agent running in its own container on the Flashpods host (image flashpods/agent: git, the coding agent CLI). ' +
      'It works on a private copy of your files at /work (READ-WRITE; .git, node_modules, target, __pycache__, .venv left out by default), commits and pushes its work to git_branch, ' +
      'and leaves /artifacts/changes.patch and /artifacts/summary.md. Its changes to /work are drafts: they count only through the branch (review and merge it). ' +
      'It gets its own model and GitHub credentials from the host\'s identity service, never from you. A sub-agent cannot spawn workers or other agents (the firewall enforces it). ' +
      'Write the task as a complete brief: goal, constraints, how to verify (e.g. "make `npm test` pass", "run `pytest -x`"), and what to put in /artifacts. ' +
      `${CONTAINER_FACTS} ${HOW_TO_FOLLOW}`,
    inputSchema: z.object({
      task: z.string().min(1, 'task must not be empty').max(MAX_TASK_CHARS, `task must be at most ${MAX_TASK_CHARS} characters`)
        .refine((t) => t.trim() !== '', 'task must not be blank')
        .describe('What the agent must do, as a complete brief.'),
      git_branch: z.string().min(1, 'git_branch is required').max(255).refine(isValidGitRef, 'git_branch must be a valid git branch name (git check-ref-format)')
        .describe('Branch the agent commits and pushes to, e.g. "agent/fix-auth". Required.'),
      context: z.string().max(MAX_CONTEXT_CHARS, `context must be at most ${MAX_CONTEXT_CHARS} characters`).optional()
        .describe('Background the agent should know: relevant files, decisions, conventions, error output.'),
      files: filesSchema.optional(),
      cpus: intIn(1, agent.maxCpus, agent.defaultCpus, 'cpus').describe(`CPU cores, 1–${agent.maxCpus} (default ${agent.defaultCpus}).`),
      memory_gb: intIn(1, agent.maxMemoryGb, agent.defaultMemoryGb, 'memory_gb').describe(`Memory in GB, 1–${agent.maxMemoryGb} (default ${agent.defaultMemoryGb}).`),
      timeout_minutes: intIn(TIMEOUT_MINUTES.min, TIMEOUT_MINUTES.max, agent.defaultTimeoutMinutes, 'timeout_minutes')
        .describe(`Wall-clock limit in minutes, ${TIMEOUT_MINUTES.min}–${TIMEOUT_MINUTES.max} (default ${agent.defaultTimeoutMinutes}).`),
      ...queueFields,
    }),
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    fieldCodes: {
      task: 'missing_task', git_branch: 'missing_git_branch', context: 'invalid_context', cpus: 'invalid_cpus', memory_gb: 'invalid_memory', timeout_minutes: 'invalid_timeout', files: 'invalid_argument',
      queue: 'invalid_argument', queue_timeout_minutes: 'invalid_queue_timeout',
    },
    async run(args, call) {
      const body: CreateJobBody = {
        type: 'agent', task: args.task, git_branch: args.git_branch, cpus: args.cpus, memory_gb: args.memory_gb, timeout_minutes: args.timeout_minutes,
        queue: args.queue, queue_timeout_minutes: args.queue_timeout_minutes,
      };
      if (args.context !== undefined) body.context = args.context;
      return createJob(ctx, call, body, args.files);
    },
  };

  const getJobStatus: ToolSpec = {
    name: 'get_job_status',
    title: 'Job status',
    description:
      'Status of a job: pending/starting/running, or terminal — completed (exit 0), failed (non-zero exit, or an error such as oom_killed), timed_out, cancelled. ' +
      'Gives exit_code once terminal, elapsed_seconds, and error. Returns immediately; use wait_for_job to block until the job ends.',
    inputSchema: z.object({ job_id: jobId }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found' },
    async run(args, call) {
      return statusView(await getJob(ctx, call, args.job_id));
    },
  };

  const waitForJob: ToolSpec = {
    name: 'wait_for_job',
    title: 'Wait for a job to end',
    description:
      'Block until a job ends or timeout_seconds pass, whichever comes first, then return its status (like get_job_status) plus the last log lines. ' +
      'While waiting, new log lines are sent as progress notifications if your client asked for progress. ' +
      `The default (${WAIT_TIMEOUT.default} s) stays under the common 60 s tool-call timeout; if "terminal" is false in the answer, call it again.`,
    inputSchema: z.object({
      job_id: jobId,
      timeout_seconds: intIn(WAIT_TIMEOUT.min, WAIT_TIMEOUT.max, WAIT_TIMEOUT.default, 'timeout_seconds')
        .describe(`How long to wait at most, ${WAIT_TIMEOUT.min}–${WAIT_TIMEOUT.max} seconds (default ${WAIT_TIMEOUT.default}).`),
    }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found', timeout_seconds: 'invalid_argument' },
    async run(args, call) {
      const started = Date.now();
      const deadline = started + args.timeout_seconds * 1000;
      let job = await getJob(ctx, call, args.job_id);
      let logBytes = -1;
      let ticking: Promise<void> | undefined;
      const tick = async (force: boolean) => {
        // The newest lines: whatever the log grew by since the last look (at most 50 lines).
        let message = '';
        try {
          const out = await api.json<{ output: string; total_bytes: number }>('GET', `/jobs/${args.job_id}/output`, { query: { tail: 50 }, noRetry: true, timeoutMs: 5000, signal: call.signal });
          const { output, total_bytes: total } = out.body;
          if (logBytes >= 0 && total > logBytes) {
            let budget = total - logBytes;
            const fresh: string[] = [];
            for (const line of lastLines(output, 50).reverse()) {
              budget -= Buffer.byteLength(line) + 1;
              if (budget < 0) break;
              fresh.unshift(line);
            }
            message = fresh.join('\n');
          } else if (logBytes < 0) {
            message = lastLines(output, 5).join('\n');
          }
          logBytes = total;
        } catch {
          /* no log yet (pending) or a hiccup: report the heartbeat only */
        }
        const elapsed = (Date.now() - started) / 1000;
        const where = job.status === 'queued' && typeof job.queue_position === 'number' ? ` at position ${job.queue_position} of the host's queue` : '';
        call.progress.report(elapsed, args.timeout_seconds, message || `${job.status}${where}, waited ${Math.round(elapsed)} s`, force);
      };
      const tickMs = ctx.waitTickMs ?? 2000;
      const timer = call.progress.enabled
        ? setInterval(() => { ticking ??= tick(true).finally(() => { ticking = undefined; }); }, tickMs)
        : undefined;
      try {
        if (call.progress.enabled) await tick(true);
        while (!isTerminal(job.status)) {
          const remainingMs = deadline - Date.now();
          if (remainingMs <= 0) break;
          if (remainingMs < 1000) {
            // The long-poll counts whole seconds: sleep the rest, then look once more.
            await sleep(remainingMs, call.signal);
            job = await getJob(ctx, call, args.job_id);
            break;
          }
          job = await getJob(ctx, call, args.job_id, Math.min(Math.floor(remainingMs / 1000), 300));
        }
      } finally {
        if (timer) clearInterval(timer);
        await ticking;
      }
      if (call.progress.enabled && isTerminal(job.status)) await tick(true);
      const view = statusView(job);
      view.waited_seconds = Math.round((Date.now() - started) / 100) / 10;
      try {
        const out = await api.json<{ output: string }>('GET', `/jobs/${args.job_id}/output`, { query: { tail: 20 }, signal: call.signal });
        view.output_tail = out.body.output;
      } catch {
        view.output_tail = '';
      }
      return view;
    },
  };

  const getJobOutput: ToolSpec = {
    name: 'get_job_output',
    title: 'Job log',
    description:
      'The last `tail` lines of a job\'s log (stdout and stderr interleaved, each line prefixed [HH:MM:SS.mmm] UTC). Works while the job runs. ' +
      '"truncated" means the log hit its 50 MB cap (the beginning is kept). Logs are deleted 24 hours after the job ends (logs_deleted).',
    inputSchema: z.object({
      job_id: jobId,
      tail: intIn(1, OUTPUT_TAIL.max, OUTPUT_TAIL.default, 'tail').describe(`Number of lines from the end, 1–${OUTPUT_TAIL.max} (default ${OUTPUT_TAIL.default}).`),
    }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found', tail: 'invalid_query' },
    async run(args, call) {
      const answer = await api.json<OutputResponse>('GET', `/jobs/${args.job_id}/output`, {
        query: { tail: args.tail }, signal: call.signal, onRetry: retryNote(call, 'job output'),
      });
      return { job_id: args.job_id, ...answer.body };
    },
  };

  const getJobArtifacts: ToolSpec = {
    name: 'get_job_artifacts',
    title: 'List a job\'s artifacts',
    description:
      'The files and directories a finished job left in /artifacts (top-level entries only; a directory is one artifact and downloads as a .tar), with sizes and when they expire (1 hour after the job ended). ' +
      'Available once the job is terminal (artifacts_not_available before). Download one with download_artifact.',
    inputSchema: z.object({ job_id: jobId }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found' },
    async run(args, call) {
      // Indexing takes a moment after the job ends; wait for it briefly rather than list half.
      for (let i = 0; ; i++) {
        const answer = await api.json<ArtifactListResponse>(
          'GET', `/jobs/${args.job_id}/artifacts`, { signal: call.signal, onRetry: retryNote(call, 'artifacts') },
        );
        if (!answer.body.copy_in_progress || i >= 20) return { job_id: args.job_id, count: answer.body.artifacts.length, ...answer.body };
        await sleep(250, call.signal);
      }
    },
  };

  const downloadArtifactTool: ToolSpec = {
    name: 'download_artifact',
    title: 'Download an artifact',
    description:
      'Stream one artifact of a finished job to a file on this machine. save_to is a file path, or a directory (existing, or ending in "/") to save under the artifact\'s name; ' +
      'relative paths resolve against the download directory (FLASHPODS_DOWNLOAD_DIR, else the MCP server\'s working directory), and nothing is ever written outside it. ' +
      'An existing file is refused (file_exists) unless overwrite is true. A directory artifact is saved as a .tar archive. ' +
      'The file appears only when complete (a failed download leaves nothing behind); the answer gives its size and sha256.',
    inputSchema: z.object({
      job_id: jobId,
      artifact_name: z.string().min(1, 'artifact_name must not be empty').max(MAX_ARTIFACT_NAME)
        .superRefine((name, zctx) => {
          try {
            checkArtifactName(name);
          } catch (err) {
            zctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        })
        .describe('A name listed by get_job_artifacts (a file name, not a path).'),
      save_to: z.string().min(1).max(4096).optional().meta({ default: '.' })
        .describe('Destination file or directory, inside the download directory. Default: the download directory itself.'),
      overwrite: z.boolean().default(false).describe('Replace an existing file at the destination (default false).'),
    }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found', artifact_name: 'invalid_artifact_name', save_to: 'invalid_save_to', overwrite: 'invalid_argument' },
    async run(args, call) {
      const target = await resolveSaveTo(config.downloadDir, args.save_to, args.artifact_name, args.overwrite);
      const started = Date.now();
      const result = await downloadArtifact({
        api, jobId: args.job_id, artifactName: args.artifact_name, target, overwrite: args.overwrite, signal: call.signal,
        onProgress: (bytes, total) => call.progress.report(bytes, total, `downloaded ${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ''}`),
        onRetry: retryNote(call, 'download'),
      });
      return { job_id: args.job_id, artifact_name: args.artifact_name, ...result, seconds: Math.round((Date.now() - started) / 100) / 10 };
    },
  };

  const listJobs: ToolSpec = {
    name: 'list_jobs',
    title: 'List recent jobs',
    description:
      'Recent jobs, newest first. status filter: all (default), running (pending, starting or running), completed, failed (failed, timed_out or cancelled). ' +
      '"total" counts every job matching the filter; "jobs" holds at most `limit`.',
    inputSchema: z.object({
      status: z.enum(Object.keys(STATUS_FILTERS) as ['all', 'queued', 'running', 'completed', 'failed']).default('all').describe('Which jobs: all, queued (the queue in order), running, completed or failed (default all).'),
      limit: intIn(1, LIST_LIMIT.max, LIST_LIMIT.default, 'limit').describe(`At most this many jobs, 1–${LIST_LIMIT.max} (default ${LIST_LIMIT.default}).`),
    }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    fieldCodes: { status: 'invalid_query', limit: 'invalid_query' },
    async run(args, call) {
      const answer = await api.json<JobListResponse>('GET', '/jobs', {
        query: { status: args.status, limit: args.limit }, signal: call.signal, onRetry: retryNote(call, 'list jobs'),
      });
      return { status: args.status, limit: args.limit, total: answer.body.total, jobs: answer.body.jobs.map(({ id, ...rest }) => ({ job_id: id, ...rest })) };
    },
  };

  const killJob: ToolSpec = {
    name: 'kill_job',
    title: 'Kill a job',
    description:
      'Stop a pending or running job: SIGTERM to its main process, SIGKILL to everything in the container 10 s later; the job ends cancelled. ' +
      'Its log and any artifacts written so far are kept until cleanup. A job that already ended gives job_already_terminal.',
    inputSchema: z.object({ job_id: jobId }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    fieldCodes: { job_id: 'job_not_found' },
    async run(args, call) {
      let retried = false;
      try {
        const answer = await api.json<{ job_id: string; status: string; message: string }>('DELETE', `/jobs/${args.job_id}`, {
          signal: call.signal,
          onRetry: (n) => {
            retried = true;
            retryNote(call, 'kill')(n);
          },
        });
        return { job_id: answer.body.job_id, status: answer.body.status, message: answer.body.message };
      } catch (err) {
        // A retry after a lost answer finds the job already cancelled by the first attempt.
        if (retried && err instanceof ToolFailure && err.code === 'job_already_terminal') {
          const job = await getJob(ctx, call, args.job_id);
          if (job.status === 'cancelled') return { job_id: job.id, status: job.status, message: 'Job termination initiated' };
        }
        throw err;
      }
    },
  };

  return [spawnWorker, spawnSubAgent, getJobStatus, getJobOutput, getJobArtifacts, downloadArtifactTool, listJobs, killJob, waitForJob];
}
