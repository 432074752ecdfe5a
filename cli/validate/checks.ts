/**
 * @module cli/validate/checks
 * The host checklist of shared/spec/host.md ("Validation checklist") as checks `flashpods
 * validate` runs against the live host: each passes, fails with a one-line hint, or is skipped.
 *
 * Secrets: the JWT-SVIDs fetched in probe containers and the tokens the token service answers
 * with exist only in this process's memory (probe output goes through an attach stream of a
 * container whose log driver is `none`); no detail, hint or error message ever contains them.
 *
 * The token exchange is made from the host with the SVID a probe container obtained: what the
 * token service decides depends only on the SVID it is shown (spec/identity.md), and doing it
 * here needs no HTTP-over-unix client inside an arbitrary probe image.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { SETTINGS, type FlashpodsConfig } from '../../actors/contract/config.ts';
import { jobErrorText } from '../../actors/contract/jobs.ts';
import { SPIFFE_IDS, TOKEN_SERVICE_AUDIENCE } from '../../actors/tokens/policy.ts';
import { Failed } from './failed.ts';
import { accounts, listenerFor, onPath, processesNamed, socketOwner, type Accounts, type ProcessInfo } from './host.ts';
import { ProbeError, Prober, type ProbeRun, type ProbeSpec } from './probe.ts';
import { errorCode, jsonOf, socketProblem, unixRequest } from './unix-http.ts';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  title: string;
  expected: string;
  status: CheckStatus;
  /** What was seen (never a secret). */
  detail: string;
  /** One line on what to do, for failures. */
  hint?: string;
  ms: number;
}

export interface ValidateOptions {
  config: FlashpodsConfig;
  /** Image of the probe containers and of the end-to-end job (needs sh and nc). */
  image: string;
  spireAgentBin?: string;
  /** Addresses the firewall protects (the API port is config.listen.port). */
  apiHost: string;
  rsyncHost: string;
  rsyncPort: number;
  laptopAddress: string;
  rsyncdConf?: string;
  /** Expected user and group of the Podman and API sockets; the group of the token socket. */
  owner: string;
  /** The token service's own user: owner of the token socket and of the directory it is in. */
  tokenUser: string;
  /** Expected user and group of the SPIRE agent socket. */
  spireOwner: string;
  internetUrl: URL;
  offline: boolean;
  jobTimeoutMs: number;
}

/** Where production keeps the token socket (config.ts), named in the hint when it is elsewhere. */
const TOKEN_SOCKET_HOME = String(SETTINGS.find((s) => s.key === 'paths.tokenSocket')!.production);

const IN_CONTAINER = { spireSocket: '/run/spire/sockets/agent.sock', spireAgent: '/flashpods-validate/spire-agent' };
const SPIRE_SERVER_SOCKET = '/run/spire/server/api.sock';

class Skipped extends Error {}

interface CheckDef {
  id: string;
  title: string;
  expected: string;
  run: (ctx: Context) => Promise<string>;
  /** Run only with this FLASHPODS_EXECUTOR (unless asked for with --only). */
  executor?: FlashpodsConfig['executor'];
}

/** Work several checks share, done once per run. */
class Context {
  readonly prober: Prober;
  readonly accounts: Accounts = accounts();
  private svids = new Map<'worker' | 'agent', Promise<{ spiffeId: string; svid: string }>>();
  private jobRun?: Promise<JobOutcome>;

  constructor(readonly options: ValidateOptions) {
    this.prober = new Prober(options.config, options.image);
  }

  get config(): FlashpodsConfig {
    return this.options.config;
  }

  async probe(spec: ProbeSpec): Promise<ProbeRun> {
    try {
      return await this.prober.run(spec);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw err;
      const socket = this.config.paths.podmanSocket;
      const hint = {
        podman: `start Podman's API for user flashpods (systemctl status flashpods-podman-socket; curl -s --unix-socket ${socket} http://d/_ping)`,
        image: `pull it into flashpods' Podman storage (podman --url unix://${socket} pull ${this.options.image}) or pass --image with an image that has sh and nc`,
        create: 'see the Podman error; podman ps -a --filter name=flashpods-validate- lists leftovers',
        timeout: 'the host may be overloaded or Podman stuck: podman ps -a --filter name=flashpods-validate-',
      }[err.kind];
      throw new Failed(err.message, hint);
    }
  }

  /** A JWT-SVID for the token service's audience, fetched inside a container labelled `type`. */
  svid(type: 'worker' | 'agent'): Promise<{ spiffeId: string; svid: string }> {
    let p = this.svids.get(type);
    if (!p) {
      p = this.fetchSvid(type);
      p.catch(() => undefined);
      this.svids.set(type, p);
    }
    return p;
  }

  private async fetchSvid(type: 'worker' | 'agent'): Promise<{ spiffeId: string; svid: string }> {
    const socket = this.config.paths.spireSocket;
    const expected = SPIFFE_IDS[type];
    if (!existsSync(socket)) throw new Failed(`no SPIRE Workload API socket at ${socket}`, 'systemctl status spire-agent (the agent creates the socket once it is attested)');
    const agent = this.spireAgentBinary();
    const run = await this.probe({
      what: `spire-${type}`,
      jobType: type,
      argv: [agent.path, 'api', 'fetch', 'jwt', '-audience', TOKEN_SERVICE_AUDIENCE, '-socketPath', IN_CONTAINER.spireSocket, '-output', 'json', '-timeout', '10s'],
      binds: [`${socket}:${IN_CONTAINER.spireSocket}`, ...agent.binds],
      timeoutMs: 30_000,
    });
    if (run.exitCode !== 0) {
      // spire-agent's error output holds no SVID (it has none to print); stdout is never shown.
      const error = lastLine(run.stderr) || `exit ${run.exitCode}`;
      throw new Failed(`no SVID for a container labelled flashpods-job-type=${type}: ${error}`, spireHint(error, run.exitCode, type, socket));
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(run.stdout);
    } catch {
      throw new Failed(`spire-agent printed ${run.stdout.length} bytes that are not JSON`, 'use the spire-agent of the running SPIRE version (--spire-agent-bin)');
    }
    const svids = (Array.isArray(parsed) ? parsed : [parsed]).flatMap((m) => ((m as { svids?: unknown })?.svids as Array<{ spiffe_id?: unknown; svid?: unknown }> | undefined) ?? []);
    const ids = svids.map((s) => String(s.spiffe_id));
    const mine = svids.find((s) => s.spiffe_id === expected && typeof s.svid === 'string');
    if (!mine || svids.length !== 1) {
      throw new Failed(`a container labelled flashpods-job-type=${type} was issued ${ids.length ? ids.join(', ') : 'no SVID'}, expected exactly ${expected}`,
        `the registration entries are wrong: spire-server entry show -socketPath ${SPIRE_SERVER_SOCKET} (selector docker:label:flashpods-job-type:${type} → ${expected} only)`);
    }
    return { spiffeId: expected, svid: mine.svid as string };
  }

  /** The spire-agent binary to run inside probe containers, and the binds that make it runnable there. */
  private spireAgentBinary(): { path: string; binds: string[] } {
    const given = this.options.spireAgentBin;
    const candidate = given ?? processesNamed('spire-agent').map((p) => p.exe).find((e): e is string => !!e && existsSync(e)) ?? onPath('spire-agent');
    if (!candidate || !existsSync(candidate)) {
      throw new Failed(given ? `--spire-agent-bin ${given} does not exist` : 'no spire-agent binary found (none running, none on PATH)', 'pass --spire-agent-bin PATH (a statically linked spire-agent, or one from /nix/store)');
    }
    const real = realpathSync(candidate);
    // A Nix-built binary finds its loader and libraries under /nix/store: mount the store.
    if (real.startsWith('/nix/store/')) return { path: real, binds: ['/nix/store:/nix/store:ro'] };
    return { path: IN_CONTAINER.spireAgent, binds: [`${real}:${IN_CONTAINER.spireAgent}:ro`] };
  }

  job(): Promise<JobOutcome> {
    this.jobRun ??= runJob(this);
    this.jobRun.catch(() => undefined);
    return this.jobRun;
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean).at(-1)?.slice(0, 300) ?? '';
}

function firstLine(text: string): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean)[0]?.slice(0, 300) ?? '';
}

function spireHint(error: string, exitCode: number, type: string, socket: string): string {
  if (/no identity issued/i.test(error)) {
    return `no registration entry matches docker:label:flashpods-job-type:${type}: spire-server entry show -spiffeID ${SPIFFE_IDS[type as 'worker']} -socketPath ${SPIRE_SERVER_SOCKET}; re-register with systemctl restart spire-register-entries`;
  }
  if (/attestation failed|attestor/i.test(error)) {
    return 'the SPIRE agent could not map the container to its labels: does the Podman socket its docker attestor dials answer (/run/user/<flashpods uid>/podman/podman.sock)? journalctl -u spire-agent';
  }
  if (/connection refused|no such file|connect:/i.test(error)) return `the SPIRE agent is not serving ${socket}: systemctl status spire-agent`;
  if (/deadline|timeout/i.test(error)) return 'the SPIRE agent did not answer within 10 s: journalctl -u spire-agent';
  if (exitCode === 126 || exitCode === 127 || /exec format|not found|permission denied/i.test(error)) {
    return 'spire-agent cannot run inside the probe image: pass a statically linked one with --spire-agent-bin';
  }
  return 'journalctl -u spire-agent';
}

// ---------------------------------------------------------------------------------------------
// Token exchange

async function exchange(ctx: Context, type: 'worker' | 'agent'): Promise<string> {
  let svid: string;
  try {
    ({ svid } = await ctx.svid(type));
  } catch (err) {
    if (err instanceof Failed) throw new Failed(`no ${type} SVID to exchange (${err.detail})`, `fix the SPIRE attestation check for ${type} first`);
    throw err;
  }
  const socket = ctx.config.paths.tokenSocket;
  const unit = 'systemctl status flashpods-token-service; journalctl -u flashpods-token-service';
  let res;
  try {
    res = await unixRequest(socket, 'GET', '/tokens', { headers: { authorization: `Bearer ${svid}` } });
  } catch (err) {
    throw new Failed(`the token service is not answering on ${socket} (${socketProblem(err)})`, unit);
  }
  if (res.status !== 200) {
    const code = errorCode(res) ?? 'no error code';
    const hints: Record<string, string> = {
      invalid_jwt: 'the token service does not accept SPIRE\'s signature: its JWT bundle is stale or from another SPIRE server (restart flashpods-token-service; journalctl -u flashpods-token-service)',
      invalid_audience: `the SVID lacks the audience ${TOKEN_SERVICE_AUDIENCE}`,
      expired_jwt: 'a fresh SVID was refused as expired: check the host clock (timedatectl)',
      unknown_identity: `the token service's policy does not know ${SPIFFE_IDS[type]}: is it the same Flashpods build?`,
      secrets_unavailable: `the token service cannot read ${ctx.config.paths.secretsFile} or it lacks anthropic_api_key / github_token`,
    };
    throw new Failed(`GET /tokens as ${SPIFFE_IDS[type]} answered HTTP ${res.status} ${code}`, hints[code] ?? unit);
  }
  const body = jsonOf(res) as Record<string, unknown> | undefined;
  const describe = (v: unknown) => (v === null ? 'null' : typeof v === 'string' && v !== '' ? 'issued' : v === undefined ? 'missing' : 'malformed');
  const anthropic = describe(body?.ANTHROPIC_API_KEY);
  const github = describe(body?.GITHUB_TOKEN);
  const seen = `ANTHROPIC_API_KEY ${anthropic}, GITHUB_TOKEN ${github} (values not shown)`;
  if (type === 'agent') {
    if (anthropic === 'issued' && github === 'issued') return seen;
    throw new Failed(`as agent: ${seen}`, `both keys must be in ${ctx.config.paths.secretsFile} (anthropic_api_key, github_token)`);
  }
  if (github === 'issued' && anthropic === 'null') return seen;
  if (anthropic === 'issued') throw new Failed(`as worker: ${seen}`, 'POLICY VIOLATION: a worker must never get ANTHROPIC_API_KEY — the token service runs a wrong build');
  throw new Failed(`as worker: ${seen}`, `github_token must be in ${ctx.config.paths.secretsFile}`);
}

// ---------------------------------------------------------------------------------------------
// Network probes from a container (busybox / alpine `nc`)

type Reach = 'reached' | 'refused' | 'timed out' | `inconclusive: ${string}`;

interface NcProbe {
  name: string;
  host: string;
  port: number;
  /** printf format: what to send (e.g. an HTTP request), escapes allowed, no % or '. */
  send: string;
}

function ncScript(probes: NcProbe[], waitSec: number): string {
  return [
    "command -v nc >/dev/null 2>&1 || { echo 'FPV-MISSING nc'; exit 3; }",
    `p() { o=$(printf "$4" | nc -w ${waitSec} "$2" "$3" 2>&1); r=$?; printf 'FPV %s %s %s\\n' "$1" "$r" "$(printf '%s' "$o" | head -c 300 | tr '\\r\\n\\t' '   ')"; }`,
    ...probes.map((p) => `p '${p.name}' '${p.host}' '${p.port}' '${p.send}' &`),
    'wait',
  ].join('\n');
}

async function runNc(ctx: Context, what: string, probes: NcProbe[], waitSec: number): Promise<Map<string, { rc: number; out: string }>> {
  const run = await ctx.probe({ what, jobType: 'worker', argv: ['/bin/sh', '-c', ncScript(probes, waitSec)], timeoutMs: (waitSec + 20) * 1000 });
  if (/FPV-MISSING nc/.test(run.stdout)) throw new Failed(`the probe image ${ctx.options.image} has no nc`, 'pass --image with busybox nc (alpine:latest has it)');
  const results = new Map<string, { rc: number; out: string }>();
  for (const line of run.stdout.split('\n')) {
    const m = /^FPV (\S+) (\d+) ?(.*)$/.exec(line);
    if (m) results.set(m[1]!, { rc: Number(m[2]), out: m[3]!.trim() });
  }
  for (const p of probes) {
    if (!results.has(p.name)) throw new Failed(`the probe container printed no result for ${p.name} (exit ${run.exitCode}${run.stderr.trim() ? `: ${lastLine(run.stderr)}` : ''})`, 'pass --image with a shell and busybox nc (alpine:latest)');
  }
  return results;
}

function reach({ rc, out }: { rc: number; out: string }): Reach {
  if (rc === 0 || /HTTP\/\d|@RSYNCD/.test(out)) return 'reached';
  if (/refused/i.test(out)) return 'refused';
  if (/timed? ?out/i.test(out)) return 'timed out';
  return `inconclusive: ${out || `nc exit ${rc}`}`;
}

function nftTableState(): Promise<string> {
  return new Promise((resolve) => {
    execFile('nft', ['list', 'table', 'inet', 'flashpods'], { timeout: 5_000 }, (err) => resolve(err ? ((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'nft not found' : 'table inet flashpods is MISSING') : 'table inet flashpods is loaded but lets them through'));
  });
}

async function firewall(ctx: Context): Promise<string> {
  const { apiHost, rsyncHost, rsyncPort } = ctx.options;
  const apiPort = ctx.config.listen.port;
  const results = await runNc(ctx, 'firewall', [
    { name: 'api', host: apiHost, port: apiPort, send: 'GET /health HTTP/1.0\\r\\n\\r\\n' },
    { name: 'rsync', host: rsyncHost, port: rsyncPort, send: '@RSYNCD: 31.0\\n#list\\n' },
  ], 3);
  const api = reach(results.get('api')!);
  const rsync = reach(results.get('rsync')!);
  const seen = `API ${apiHost}:${apiPort} ${api}, rsync ${rsyncHost}:${rsyncPort} ${rsync}`;
  const blocked = (r: Reach) => r === 'refused' || r === 'timed out';
  if (blocked(api) && blocked(rsync)) return seen;
  if (api === 'reached' || rsync === 'reached') {
    throw new Failed(`a job container got through: ${seen}`, `the firewall must drop it (${await nftTableState()}): nft list table inet flashpods; reload nix/firewall/flashpods.nft (systemctl restart nftables)`);
  }
  throw new Failed(`the probe could not tell: ${seen}`, `do job containers have a network? (FLASHPODS_CONTAINER_NETWORK=${ctx.config.podman.networkMode})`);
}

async function internet(ctx: Context): Promise<string> {
  if (ctx.options.offline) throw new Skipped('--offline: no traffic was sent outside the host');
  const url = ctx.options.internetUrl;
  const port = Number(url.port || 80);
  const path = `${url.pathname || '/'}${url.search}`;
  const results = await runNc(ctx, 'internet', [
    { name: 'web', host: url.hostname, port, send: `HEAD ${path} HTTP/1.0\\r\\nHost: ${url.host}\\r\\nUser-Agent: flashpods-validate\\r\\nConnection: close\\r\\n\\r\\n` },
  ], 10);
  const r = results.get('web')!;
  const status = /HTTP\/\d(?:\.\d)? \d{3}[^ ]*(?: [A-Za-z]+)*/.exec(r.out)?.[0];
  if (status) return `${url.href} answered ${status}`;
  const problem = reach(r);
  throw new Failed(`a job container could not reach ${url.href}: ${problem === 'reached' ? `no HTTP answer (${r.out.slice(0, 120)})` : problem}`,
    /bad address|resolve/i.test(r.out) ? 'DNS does not work inside job containers (slirp4netns/bridge DNS)' : `job containers need a route out (network mode ${ctx.config.podman.networkMode}); is the host online?`);
}

// ---------------------------------------------------------------------------------------------
// API, rsync, end-to-end job

function apiToken(ctx: Context): string {
  const path = ctx.config.paths.apiTokenFile;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Failed(`cannot read the API token file ${path} (${(err as NodeJS.ErrnoException).code})`, 'run flashpods validate as root');
  }
}

async function apiHealth(ctx: Context): Promise<string> {
  const socket = ctx.config.paths.apiSocket;
  const unit = 'systemctl status flashpods-api; journalctl -u flashpods-api -o cat';
  let res;
  try {
    res = await unixRequest(socket, 'GET', '/health');
  } catch (err) {
    throw new Failed(`the API is not answering on ${socket} (${socketProblem(err)})`, unit);
  }
  const body = jsonOf(res) as { status?: string; version?: string; actors?: Record<string, string> } | undefined;
  if (res.status !== 200 || body?.status !== 'healthy') {
    const down = Object.entries(body?.actors ?? {}).filter(([, s]) => s !== 'running').map(([a, s]) => `${a} ${s}`).join(', ');
    throw new Failed(`GET /health answered HTTP ${res.status} ${body?.status ?? ''}${down ? ` (${down})` : ''}`, `${unit} | jq 'select(.level >= 40)'`);
  }
  const { host, port } = ctx.config.listen;
  const listener = listenerFor(host, port);
  if (!listener) throw new Failed(`healthy on ${socket}, but nothing listens on ${host}:${port} for the laptop`, `${unit} (the API binds ${host}: is wg0 up?)`);
  return `healthy (version ${body.version ?? '?'}) on ${socket}; listening on ${listener.address}:${port}`;
}

function runCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === -1 ? err.message : '') });
    });
  });
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The rsync daemon: something rsync listens on the tunnel address, and its configuration lists
 * `uploads` and lets the laptop in. The host's own TCP connection to port 873 is dropped by the
 * firewall (and refused by `hosts allow`), so the listing is asked of rsync in its
 * daemon-over-remote-shell mode: the same binary and config file, the laptop's address given the
 * way rsync takes it from a remote shell (SSH_CONNECTION).
 */
async function rsync(ctx: Context): Promise<string> {
  const { rsyncHost, rsyncPort, laptopAddress } = ctx.options;
  const unit = 'systemctl status flashpods-rsyncd';
  const listener = listenerFor(rsyncHost, rsyncPort);
  if (!listener) throw new Failed(`nothing listens on ${rsyncHost}:${rsyncPort}`, `${unit} (it binds ${rsyncHost}: is wg0 up?)`);
  const owner: ProcessInfo | undefined = socketOwner(listener.inode);
  if (owner && owner.comm !== 'rsync') throw new Failed(`${rsyncHost}:${rsyncPort} is held by ${owner.comm} (pid ${owner.pid}), not rsync`, `stop it; ${unit}`);
  const configArg = owner?.argv.flatMap((a, i, all) => (a.startsWith('--config=') ? [a.slice(9)] : a === '--config' ? [all[i + 1] ?? ''] : []))[0];
  const conf = ctx.options.rsyncdConf ?? configArg ?? '/etc/rsyncd.conf';
  const bin = owner?.exe && existsSync(owner.exe) ? owner.exe : onPath('rsync');
  if (!bin) throw new Failed('no rsync binary found', 'install rsync or run validate where the daemon runs');
  const env = { ...process.env, SSH_CONNECTION: `${laptopAddress} 50000 ${rsyncHost} ${rsyncPort}` };
  const args = (target: string) => [
    `--rsh=sh -c 'shift; exec sh -c "$*"' rsh`,
    `--rsync-path=${shellQuote(bin)} ${shellQuote(`--config=${conf}`)} --log-file=/dev/null`,
    `localhost::${target}`,
  ];
  const list = await runCommand(bin, args(''), env, 20_000);
  if (list.code !== 0) throw new Failed(`rsync could not list the modules of ${conf}: ${firstLine(list.stderr) || `exit ${list.code}`}`, `rsync --daemon --config=${conf} must accept it; ${unit}`);
  if (!/^uploads\s/m.test(list.stdout)) throw new Failed(`${conf} lists no module uploads`, `${conf} must define [uploads] with list = yes (nix/modules/rsyncd.nix)`);
  const open = await runCommand(bin, args('uploads/'), env, 20_000);
  if (open.code !== 0) throw new Failed(`module uploads refuses ${laptopAddress}: ${firstLine(open.stderr)}`, `hosts allow = ${laptopAddress} in ${conf}`);
  return `rsync (pid ${owner?.pid ?? '?'}) listening on ${listener.address}:${rsyncPort}; ${conf} lists uploads, open to ${laptopAddress}`;
}

interface JobOutcome {
  jobId: string;
  /** `id -u` inside the job container. */
  uid: number | undefined;
  idLine: string;
  detail: string;
}

const TERMINAL = new Set(['completed', 'failed', 'timed_out', 'cancelled', 'cleaning', 'cleaned']);

async function runJob(ctx: Context): Promise<JobOutcome> {
  const token = apiToken(ctx);
  const socket = ctx.config.paths.apiSocket;
  const unit = 'journalctl -u flashpods-api -o cat';
  const call = async (method: string, path: string, body?: unknown, timeoutMs = 15_000) => {
    try {
      return await unixRequest(socket, method, path, { headers: { authorization: `Bearer ${token}` }, ...(body ? { body: JSON.stringify(body) } : {}), timeoutMs });
    } catch (err) {
      throw new Failed(`the API is not answering on ${socket} (${socketProblem(err)})`, 'systemctl status flashpods-api');
    }
  };
  const t0 = Date.now();
  const created = await call('POST', '/jobs', {
    type: 'worker',
    image: ctx.options.image,
    // The id line first: the user check reads it even when the write fails (e.g. as root).
    command: 'echo "flashpods-validate-id $(id -u) $(id)"; echo hello > /artifacts/test.txt',
    cpus: 1,
    memory_gb: 1,
    timeout_minutes: Math.max(1, Math.ceil(ctx.options.jobTimeoutMs / 60_000)),
  });
  const jobId = (jsonOf(created) as { job_id?: string } | undefined)?.job_id;
  if (created.status !== 201 || !jobId) throw new Failed(`POST /jobs answered HTTP ${created.status} ${errorCode(created) ?? ''}`, unit);

  const deadline = t0 + ctx.options.jobTimeoutMs;
  let job: { status?: string; exit_code?: number | null; error?: string } = {};
  while (Date.now() < deadline) {
    const res = await call('GET', `/jobs/${jobId}?wait=10`, undefined, 20_000);
    job = (jsonOf(res) as typeof job | undefined) ?? {};
    if (res.status !== 200) throw new Failed(`GET /jobs/${jobId} answered HTTP ${res.status} ${errorCode(res) ?? ''}`, unit);
    if (TERMINAL.has(job.status ?? '')) break;
  }
  if (!TERMINAL.has(job.status ?? '')) {
    await call('DELETE', `/jobs/${jobId}`).catch(() => undefined);
    throw new Failed(`job ${jobId} still ${job.status} after ${ctx.options.jobTimeoutMs / 1000} s (cancelled)`, `flashpods job ${jobId}; is the image being pulled? ${unit}`);
  }
  // The exit code and output are read even for a failed job: the user check needs them.
  const output = await call('GET', `/jobs/${jobId}/output?tail=50`);
  const text = String((jsonOf(output) as { output?: unknown } | undefined)?.output ?? '');
  const idMatch = /flashpods-validate-id (\d+) ([^\n]*)/.exec(text);
  const outcome: JobOutcome = { jobId, uid: idMatch ? Number(idMatch[1]) : undefined, idLine: idMatch?.[2]?.trim() ?? '', detail: '' };
  if (job.status !== 'completed' || job.exit_code !== 0) {
    const last = lastLine(text.replace(/flashpods-validate-id[^\n]*/g, ''));
    // "Process exited with code N" only repeats the exit code.
    const error = job.error && job.error !== jobErrorText({ code: 'process_exited', exitCode: job.exit_code ?? -1 }) ? `, ${job.error}` : '';
    throw Object.assign(new Failed(`job ${jobId} ended ${job.status}, exit ${job.exit_code ?? '-'}${error}${last ? ` (${last})` : ''}`,
      `flashpods logs ${jobId}; ${unit} | jq 'select(.job_id == "${jobId}")'`), { outcome });
  }

  let artifact;
  for (;;) {
    artifact = await call('GET', `/jobs/${jobId}/artifacts/test.txt`);
    if (artifact.status !== 503 || errorCode(artifact) !== 'copy_in_progress' || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (artifact.status !== 200) throw Object.assign(new Failed(`GET /jobs/${jobId}/artifacts/test.txt answered HTTP ${artifact.status} ${errorCode(artifact) ?? ''}`, `ls -l ${ctx.config.paths.artifacts}/${jobId}; ${unit}`), { outcome });
  const content = artifact.body.toString('utf8');
  if (content.trim() !== 'hello') throw Object.assign(new Failed(`test.txt of ${jobId} holds ${JSON.stringify(content.slice(0, 40))}, not "hello"`, `ls -l ${ctx.config.paths.artifacts}/${jobId}`), { outcome });
  outcome.detail = `job ${jobId} completed, exit 0; /artifacts/test.txt retrieved: "hello" (${((Date.now() - t0) / 1000).toFixed(1)} s)`;
  return outcome;
}

async function jobUser(ctx: Context): Promise<string> {
  let outcome: JobOutcome;
  try {
    outcome = await ctx.job();
  } catch (err) {
    const partial = (err as { outcome?: JobOutcome }).outcome;
    if (!partial) throw err instanceof Failed ? new Failed(`no job output to read (${err.detail})`, 'fix the end-to-end job check first') : err;
    outcome = partial;
  }
  if (outcome.uid === undefined) throw new Failed(`job ${outcome.jobId} printed no id line`, `flashpods logs ${outcome.jobId}`);
  const { rootless } = ctx.config.podman;
  const expected = ctx.accounts.uid(ctx.options.owner);
  const seen = `uid ${outcome.uid} inside job ${outcome.jobId} (${outcome.idLine})`;
  if (outcome.uid === 0) {
    throw new Failed(`job containers run as root: ${seen}`, 'production runs them in flashpods\' rootless Podman with keep-id (FLASHPODS_PODMAN_ROOTLESS=true)');
  }
  if (rootless && outcome.uid !== expected) {
    throw new Failed(`${seen}, expected ${ctx.options.owner}'s uid ${expected ?? '?'} (rootless, keep-id)`, 'the API must reach the rootless Podman of user flashpods (FLASHPODS_PODMAN_SOCKET) and run with FLASHPODS_PODMAN_ROOTLESS=true');
  }
  return rootless ? `${seen} = ${ctx.options.owner}` : `${seen}: not root (rootful Podman)`;
}

// ---------------------------------------------------------------------------------------------
// Sockets

interface SocketOwner {
  user: string;
  group: string;
}

function socketCheck(id: string, which: 'podmanSocket' | 'tokenSocket' | 'spireSocket' | 'apiSocket', mode: number, ownerOf: (o: ValidateOptions) => SocketOwner, unit: string,
  expected = 'socket, owner and mode as host.md'): CheckDef {
  const label = (o?: ValidateOptions) => (o ? `${ownerOf(o).user}:${ownerOf(o).group} ` : '') + `0${mode.toString(8)}`;
  return {
    id,
    title: `socket ${which.replace('Socket', '')}`,
    expected: `${expected} (${label()})`,
    async run(ctx) {
      const path = ctx.config.paths[which];
      const { user, group } = ownerOf(ctx.options);
      const want = label(ctx.options);
      const fix = `chown ${user}:${group} ${path} && chmod 0${mode.toString(8)} ${path}, or restart ${unit}, which creates it so`;
      let st;
      try {
        st = lstatSync(path);
      } catch (err) {
        throw new Failed(`${path} is missing (${(err as NodeJS.ErrnoException).code})`, `systemctl status ${unit}`);
      }
      const uid = ctx.accounts.uid(user);
      const gid = ctx.accounts.gid(group);
      const seen = `${ctx.accounts.userName(st.uid)}:${ctx.accounts.groupName(st.gid)} 0${(st.mode & 0o7777).toString(8)}`;
      if (!st.isSocket()) throw new Failed(`${path} is not a socket`, `remove it; restart ${unit}`);
      if (uid === undefined || gid === undefined) {
        throw new Failed(`${path} is ${seen}; no ${uid === undefined ? `user named ${user}` : `group named ${group}`} here`, `create it (nix/modules/${user === ctx.options.tokenUser ? 'token-service' : 'configuration'}.nix)`);
      }
      if (st.uid !== uid || st.gid !== gid || (st.mode & 0o7777) !== mode) throw new Failed(`${path} is ${seen}, expected ${want}`, fix);
      return `${path} ${seen}`;
    },
  };
}

/**
 * The token socket check, plus where the socket lives: anyone who can write to its directory, or
 * to a directory above it that is not sticky, can put their own socket there, collect every SVID
 * and answer with anything (issue 10, hole 5: the API's user could swap /run/flashpods/token.sock).
 * Only root and the token user may. Both the path as configured (a symlink on it counts by its
 * owner) and the real path are walked up to `/`.
 */
function tokenSocketCheck(): CheckDef {
  const base = socketCheck('socket-token', 'tokenSocket', 0o660, (o) => ({ user: o.tokenUser, group: o.owner }), 'flashpods-token-service',
    'socket, owner and mode, in a directory only the token user can write');
  return {
    ...base,
    async run(ctx) {
      const path = ctx.config.paths.tokenSocket;
      const { tokenUser, owner } = ctx.options;
      const trusted = new Set([0, ctx.accounts.uid(tokenUser)]);
      const socketDir = dirname(path);
      let real: string | undefined;
      try {
        real = realpathSync(socketDir);
      } catch {
        // No directory: the socket check below says the socket is missing.
      }
      for (const start of real ? [socketDir, real] : []) {
        for (let dir = start; ; dir = dirname(dir)) {
          const st = lstatSync(dir);
          const mode = st.mode & 0o7777;
          const immediate = dir === start;
          const writableByOthers = !st.isSymbolicLink() && (mode & 0o022) !== 0 && (immediate || (mode & 0o1000) === 0);
          if (!trusted.has(st.uid) || writableByOthers) {
            const seen = `${ctx.accounts.userName(st.uid)}:${ctx.accounts.groupName(st.gid)} 0${mode.toString(8)}`;
            const hint = !immediate ? `${dir} must be owned by root or ${tokenUser} and writable by its owner only (or sticky)`
              : trusted.has(st.uid) ? `chmod 2750 ${dir} (owner ${tokenUser} or root, group ${owner}, writable by the owner only)`
                : `move the socket out of ${ctx.accounts.userName(st.uid)}'s reach: FLASHPODS_TOKEN_SOCKET=${TOKEN_SOCKET_HOME} for both units, in a directory ${tokenUser}:${owner} 2750, the token service running as ${tokenUser} (nix/modules/token-service.nix does all three; /run/flashpods/token.sock is no longer served)`;
            throw new Failed(`${path} can be replaced by others than ${tokenUser}: ${dir} is ${seen}`, hint);
          }
          if (dir === '/') break;
        }
      }
      return `${await base.run(ctx)}; only root and ${tokenUser} can replace it`;
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** The checklist in host.md's order. */
export const CHECKS: CheckDef[] = [
  { id: 'spire-worker', title: 'SPIRE attestation, container labelled worker', expected: `SVID ${SPIFFE_IDS.worker}`, run: async (ctx) => `${(await ctx.svid('worker')).spiffeId} (JWT-SVID not shown)` },
  { id: 'spire-agent', title: 'SPIRE attestation, container labelled agent', expected: `SVID ${SPIFFE_IDS.agent}`, run: async (ctx) => `${(await ctx.svid('agent')).spiffeId} (JWT-SVID not shown)` },
  { id: 'tokens-agent', title: 'token exchange as agent', expected: 'both tokens', run: (ctx) => exchange(ctx, 'agent') },
  { id: 'tokens-worker', title: 'token exchange as worker', expected: 'only GITHUB_TOKEN, ANTHROPIC_API_KEY null', run: (ctx) => exchange(ctx, 'worker') },
  { id: 'firewall', title: 'a container tries the API and rsync ports', expected: 'refused or timed out', run: firewall },
  { id: 'internet', title: 'a container reaches the internet', expected: 'works', run: internet },
  { id: 'api-health', title: 'API /health (unix socket)', expected: 'healthy, listening for the laptop', run: apiHealth },
  { id: 'rsync', title: 'rsync daemon and module list', expected: 'uploads listed for the laptop', run: rsync },
  { id: 'job', title: 'end-to-end job writing /artifacts/test.txt', expected: 'exit 0, artifact retrievable with "hello"', run: async (ctx) => (await ctx.job()).detail },
  { id: 'job-user', title: '`id` inside a job container', expected: 'non-root (the flashpods uid when rootless)', run: jobUser },
  socketCheck('socket-podman', 'podmanSocket', 0o660, (o) => ({ user: o.owner, group: o.owner }), 'flashpods-podman-socket'),
  tokenSocketCheck(),
  socketCheck('socket-spire', 'spireSocket', 0o777, (o) => ({ user: o.spireOwner, group: o.spireOwner }), 'spire-agent'),
  socketCheck('socket-api', 'apiSocket', 0o660, (o) => ({ user: o.owner, group: o.owner }), 'flashpods-api'),
  // Imported when run: the cluster client costs a second of start-up a Podman host need not pay.
  { id: 'kubernetes-api', title: 'Kubernetes API server, with Flashpods\' credentials', expected: 'answers', run: async (ctx) => (await import('./kubernetes.ts')).kubernetesApi(ctx.config), executor: 'kubernetes' },
  { id: 'kubernetes-role', title: 'what those credentials may do in the namespace', expected: 'exactly the executor\'s verbs', run: async (ctx) => (await import('./kubernetes.ts')).kubernetesRole(ctx.config), executor: 'kubernetes' },
];

export const CHECK_IDS = CHECKS.map((c) => c.id);

/**
 * `--only` entries: a check id, or a group prefix (`spire`, `tokens`, `socket`, `job`,
 * `kubernetes`). Without them, every check of the configured executor.
 */
export function selectChecks(only: string[] | undefined, executor: FlashpodsConfig['executor']): CheckDef[] {
  if (!only || only.length === 0) return CHECKS.filter((c) => c.executor === undefined || c.executor === executor);
  return CHECKS.filter((c) => only.some((o) => c.id === o || c.id.startsWith(`${o}-`)));
}

export interface RunHandle {
  results: Promise<CheckResult[]>;
  /** Removes probe containers still present (for signal handlers). */
  abort(): Promise<void>;
}

/** Runs the selected checks concurrently; results come back in checklist order. */
export function runChecks(options: ValidateOptions, checks: CheckDef[]): RunHandle {
  const ctx = new Context(options);
  const results = (async () => {
    await ctx.prober.removeStale().catch(() => 0);
    try {
      return await Promise.all(checks.map(async (check): Promise<CheckResult> => {
        const t0 = performance.now();
        const base = { id: check.id, title: check.title, expected: check.expected };
        const ms = () => Math.round(performance.now() - t0);
        try {
          return { ...base, status: 'pass', detail: await check.run(ctx), ms: ms() };
        } catch (err) {
          if (err instanceof Skipped) return { ...base, status: 'skip', detail: err.message, ms: ms() };
          if (err instanceof Failed) return { ...base, status: 'fail', detail: err.detail, hint: err.hint, ms: ms() };
          return { ...base, status: 'fail', detail: `unexpected error: ${(err as Error).message}`, hint: 'this is a bug in flashpods validate; the message above says where', ms: ms() };
        }
      }));
    } finally {
      await ctx.prober.removeAll();
    }
  })();
  return { results, abort: () => ctx.prober.removeAll() };
}
