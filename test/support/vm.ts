/**
 * @module test/support/vm
 * The production-like host of scripts/flashpods-vm from a test: boots it (building or reusing the
 * cached image), runs commands in it through the guest's runner, talks to the Flashpods API on its
 * host-local socket, and powers it off. Every boot starts from the image (a qcow2 overlay).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TOOL = fileURLToPath(new URL('../../scripts/flashpods-vm', import.meta.url));
const RUN_BASE = '/run/flashpods-vm';

/** The test laptop's WireGuard private key: a test-only key, its public half is in scripts/vm/site.nix. */
export const LAPTOP_PRIVATE_KEY = 'YHcCSGUwEquqsRTR6Y8tEmxiizByG0joJnMX1G0KPmI=';

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface RunOptions {
  user?: string;
  stdin?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ApiResponse {
  status: number;
  body: any;
}

export class FlashpodsVm {
  /** Wall-clock of the phases of boot(): image (build or cache hit) + boot to the runner, then to a serving API. */
  readonly timings: Record<string, number> = {};

  private constructor(readonly runDir: string, private readonly port: number) {}

  /**
   * Builds or finds the image, boots it and waits for the runner; `log` gets the tool's progress
   * lines. A boot that fails is tried once more, saying why: under TCG the guest kernel was seen
   * stuck at boot ("soft lockup" in udev for minutes, 2026-11-29), an emulator artefact.
   */
  static async boot(log: (line: string) => void = () => {}): Promise<FlashpodsVm> {
    try {
      return await FlashpodsVm.bootOnce(log);
    } catch (err) {
      log(`flashpods-vm: the boot failed, trying once more: ${(err as Error).message.split('\n').filter((l) => /lockup|stall|failed/.test(l)).slice(0, 3).join(' | ')}`);
      return await FlashpodsVm.bootOnce(log);
    }
  }

  private static async bootOnce(log: (line: string) => void): Promise<FlashpodsVm> {
    mkdirSync(RUN_BASE, { recursive: true });
    const runDir = mkdtempSync(join(RUN_BASE, 'test-'));
    const started = performance.now();
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', [TOOL, 'boot'], { env: { ...process.env, FLASHPODS_VM_RUN: runDir, FLASHPODS_VM_OWNER_PID: String(process.pid) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        for (const line of d.toString().split('\n').filter(Boolean)) log(line);
      });
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    if (code !== 0) throw new Error(`scripts/flashpods-vm boot failed (${code}):\n${stderr}`);
    const port = Number(readFileSync(join(runDir, 'port'), 'utf8'));
    const vm = new FlashpodsVm(runDir, port);
    vm.timings.bootMs = Math.round(performance.now() - started);
    for (const m of stderr.matchAll(/(image|base|checkout disk) (?:built|\S+ ready) in (\d+) ms/g)) vm.timings[`${m[1]!.replace(' ', '_')}Ms`] = Number(m[2]);
    if (!stdout.trim().endsWith(runDir)) throw new Error(`scripts/flashpods-vm boot printed no run directory:\n${stdout}`);
    return vm;
  }

  /** The evaluated nix/ host this VM's image was rendered from (scripts/nix-check.sh's report). */
  nixReport(): any {
    const image = readFileSync(join(this.runDir, 'image'), 'utf8').trim();
    return JSON.parse(readFileSync(join(image, 'nix-report.json'), 'utf8'));
  }

  /** Runs argv (or a bash script) in the guest, as root unless `user` is given. */
  async run(command: string[] | string, options: RunOptions = {}): Promise<RunResult> {
    const argv = typeof command === 'string' ? ['bash', '-c', command] : command;
    const timeoutMs = options.timeoutMs ?? 120_000;
    const res = await fetch(`http://127.0.0.1:${this.port}/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ argv, user: options.user, stdin: options.stdin, env: options.env, timeoutMs }),
      signal: AbortSignal.timeout(timeoutMs + 30_000),
    });
    if (res.status !== 200) throw new Error(`the guest's runner refused ${JSON.stringify(argv)}: ${res.status} ${await res.text()}`);
    return (await res.json()) as RunResult;
  }

  /** Runs a bash script and returns its stdout; a non-zero exit throws with everything it printed. */
  async sh(script: string, options: RunOptions = {}): Promise<string> {
    const r = await this.run(script, options);
    if (r.code !== 0) throw new Error(`in the VM (exit ${r.code ?? r.signal}${r.timedOut ? ', timed out' : ''}): ${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    return r.stdout;
  }

  /**
   * One API request on the host-local socket (/run/flashpods/api.sock) with the deployed API token,
   * as an operator on the host makes it.
   */
  async api(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const r = await this.run([
      'sh', '-c',
      'exec curl -sS --max-time 60 --unix-socket /run/flashpods/api.sock -H "Authorization: Bearer $(cat /etc/flashpods/api-token)" ' +
        '-H "content-type: application/json" -X "$0" ${1:+--data-binary @-} -w "\\n%{http_code}" "http://flashpods$2"',
      method, body === undefined ? '' : 'body', path,
    ], { stdin: body === undefined ? '' : JSON.stringify(body), timeoutMs: 90_000 });
    if (r.code !== 0) throw new Error(`${method} ${path} in the VM: curl exit ${r.code}: ${r.stderr}`);
    const cut = r.stdout.lastIndexOf('\n');
    const text = r.stdout.slice(0, cut);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: Number(r.stdout.slice(cut + 1)), body: parsed };
  }

  /**
   * Long-polls GET /jobs/:id until the job is terminal and, for a cancelled or timed-out job (terminal at
   * once), until its container's exit code is recorded.
   */
  async waitForJob(id: string, timeoutMs = 180_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status, body } = await this.api('GET', `/jobs/${id}?wait=5`);
      if (status !== 200) throw new Error(`GET /jobs/${id}: ${status} ${JSON.stringify(body)}`);
      if (['completed', 'failed'].includes(body.status) || (['cancelled', 'timed_out'].includes(body.status) && body.exit_code !== null)) return body;
      if (Date.now() > deadline) throw new Error(`job ${id} not finished after ${timeoutMs} ms: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** Creates a worker job (201 expected) and returns its id. */
  async createJob(request: Record<string, unknown>): Promise<string> {
    const { status, body } = await this.api('POST', '/jobs', { type: 'worker', image: 'localhost/busybox:test', cpus: 1, memory_gb: 1, ...request });
    if (status !== 201) throw new Error(`POST /jobs: ${status} ${JSON.stringify(body)}`);
    return body.job_id as string;
  }

  async output(id: string): Promise<string> {
    const { status, body } = await this.api('GET', `/jobs/${id}/output?tail=10000`);
    if (status !== 200) throw new Error(`GET /jobs/${id}/output: ${status} ${JSON.stringify(body)}`);
    return body.output as string;
  }

  /** Waits until `unit` is active and the API answers /health on its socket. */
  async waitForApi(timeoutMs = 480_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.run('systemctl is-active flashpods-api.service && curl -fsS --max-time 5 --unix-socket /run/flashpods/api.sock http://flashpods/health');
      if (r.code === 0) return;
      if (Date.now() > deadline) {
        const status = await this.run('systemctl --no-pager --failed; systemctl --no-pager status flashpods-api flashpods-token-service spire-agent flashpods-podman-socket; journalctl --no-pager -n 80 -u flashpods-api');
        throw new Error(`the Flashpods API did not come up within ${timeoutMs} ms:\n${status.stdout}${status.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  /** Powers the VM off and removes its run directory. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const child = spawn('bash', [TOOL, 'stop'], { env: { ...process.env, FLASHPODS_VM_RUN: this.runDir }, stdio: 'ignore' });
      child.on('close', () => resolve());
    });
  }
}
