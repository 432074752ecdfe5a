/**
 * @module cli/commands/validate
 * `flashpods validate`: the host checklist of shared/spec/host.md, run on the host by an operator
 * (as root), against the live services. Configured like `flashpods serve` (FLASHPODS_* and
 * FLASHPODS_CONFIG, via loadConfig) plus flags for what the config does not hold. Prints each
 * check with PASS / FAIL / SKIP and a one-line hint per failure; exit 0 when nothing failed,
 * 1 when a check failed, 2 on bad arguments or configuration.
 *
 * Traffic: only to the host's own sockets and from probe containers to the host's addresses —
 * except the internet check, which `--offline` skips (and says so).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../actors/contract/config.ts';
import { CHECK_IDS, CHECKS, runChecks, selectChecks, type ValidateOptions } from '../validate/checks.ts';
import { formatJson, formatText } from '../validate/report.ts';

export const VALIDATE_USAGE = `usage: flashpods validate [--offline] [--json] [--only ids] [--image ref] [--spire-agent-bin path]
                          [--api-host addr] [--rsync-host addr] [--rsync-port n] [--laptop-address addr]
                          [--rsyncd-conf path] [--owner name] [--token-user name] [--spire-owner name]
                          [--internet-url url] [--job-timeout seconds]

Runs the host checklist (shared/spec/host.md) against the live host; run it as root on the host,
with the same FLASHPODS_* environment as the units (e.g. FLASHPODS_PROFILE=production).

  --offline            skip the internet check (no traffic leaves the host)
  --json               machine output: {ok, passed, failed, skipped, checks: [...]}
  --only ids           comma-separated check ids or groups (spire, tokens, socket, job, kubernetes):
                       ${CHECK_IDS.join(', ')}
  --image ref          image of the probe containers and the test job; needs sh and nc (default alpine:latest)
  --spire-agent-bin p  spire-agent run inside probe containers as the Workload API client
                       (default: the running agent's binary, else spire-agent on PATH)
  --api-host addr      the API address the firewall protects (default 10.0.0.1; port from FLASHPODS_LISTEN)
  --rsync-host addr    the rsync daemon's address (default 10.0.0.1), --rsync-port (default 873)
  --laptop-address a   the laptop's tunnel address rsync must let in (default 10.0.0.2)
  --rsyncd-conf path   the daemon's config (default: the running daemon's --config, else /etc/rsyncd.conf)
  --owner name         user and group expected on the Podman and API sockets, group on the token
                       socket (default flashpods)
  --token-user name    the token service's user: owns the token socket and the only non-root user
                       who may write its directory (default flashpods-tokens)
  --spire-owner name   user and group expected on the SPIRE agent socket (default root)
  --internet-url url   what the internet check asks for, http only (default http://github.com/)
  --job-timeout s      how long the end-to-end job may take, image pull included (default 180)

Exit 0 when no check failed, 1 when one did, 2 on bad arguments or configuration.`;

class UsageProblem extends Error {}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*|[0-9a-fA-F:]+)$/;
const NAME = /^[a-z_][a-z0-9_-]{0,31}$|^\d+$/;

function host(value: string | undefined, fallback: string, flag: string): string {
  const v = value ?? fallback;
  if (!HOST.test(v)) throw new UsageProblem(`${flag} ${JSON.stringify(v)} is not a host name or address`);
  return v;
}

function int(value: string | undefined, fallback: number, flag: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageProblem(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  return n;
}

function internetUrl(value: string | undefined): URL {
  const raw = value ?? 'http://github.com/';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageProblem(`--internet-url ${JSON.stringify(raw)} is not a URL`);
  }
  // It ends up in a probe container's shell script: keep it to plain characters.
  if (url.protocol !== 'http:' || !HOST.test(url.hostname) || !/^[\w\-./~?=&+]*$/.test(`${url.pathname}${url.search}`)) {
    throw new UsageProblem(`--internet-url must be a plain http:// URL (got ${JSON.stringify(raw)})`);
  }
  return url;
}

function parse(argv: string[]): { options: Omit<ValidateOptions, 'config'>; only?: string[]; json: boolean } | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        offline: { type: 'boolean' },
        json: { type: 'boolean' },
        only: { type: 'string' },
        image: { type: 'string' },
        'spire-agent-bin': { type: 'string' },
        'api-host': { type: 'string' },
        'rsync-host': { type: 'string' },
        'rsync-port': { type: 'string' },
        'laptop-address': { type: 'string' },
        'rsyncd-conf': { type: 'string' },
        owner: { type: 'string' },
        'token-user': { type: 'string' },
        'spire-owner': { type: 'string' },
        'internet-url': { type: 'string' },
        'job-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageProblem((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (values.help) return 'help';
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const o of only ?? []) {
    if (!CHECKS.some((c) => c.id === o || c.id.startsWith(`${o}-`))) throw new UsageProblem(`--only: no check ${JSON.stringify(o)}; checks: ${CHECK_IDS.join(', ')}`);
  }
  for (const flag of ['owner', 'token-user', 'spire-owner'] as const) {
    if (values[flag] !== undefined && !NAME.test(values[flag])) throw new UsageProblem(`--${flag} ${JSON.stringify(values[flag])} is not a user name`);
  }
  const image = values.image ?? 'alpine:latest';
  if (!/^[\w][\w.\-/:@]{0,254}$/.test(image)) throw new UsageProblem(`--image ${JSON.stringify(image)} is not an image reference`);
  return {
    json: values.json ?? false,
    ...(only ? { only } : {}),
    options: {
      image,
      ...(values['spire-agent-bin'] ? { spireAgentBin: values['spire-agent-bin'] } : {}),
      apiHost: host(values['api-host'], '10.0.0.1', '--api-host'),
      rsyncHost: host(values['rsync-host'], '10.0.0.1', '--rsync-host'),
      rsyncPort: int(values['rsync-port'], 873, '--rsync-port', 1, 65535),
      laptopAddress: host(values['laptop-address'], '10.0.0.2', '--laptop-address'),
      ...(values['rsyncd-conf'] ? { rsyncdConf: values['rsyncd-conf'] } : {}),
      owner: values.owner ?? 'flashpods',
      tokenUser: values['token-user'] ?? 'flashpods-tokens',
      spireOwner: values['spire-owner'] ?? 'root',
      internetUrl: internetUrl(values['internet-url']),
      offline: values.offline ?? false,
      jobTimeoutMs: int(values['job-timeout'], 180, '--job-timeout', 10, 3600) * 1000,
    },
  };
}

/** `flashpods validate [flags]`; resolves with the exit code. */
export async function runValidate(argv: string[]): Promise<number> {
  let parsed;
  let config;
  try {
    parsed = parse(argv);
    if (parsed === 'help') {
      process.stdout.write(`${VALIDATE_USAGE}\n`);
      return 0;
    }
    config = loadConfig();
  } catch (err) {
    if (err instanceof UsageProblem) {
      process.stderr.write(`flashpods validate: ${err.message}\n${VALIDATE_USAGE.split('\n\n')[0]}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`flashpods validate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const options: ValidateOptions = { ...parsed.options, config };
  const checks = selectChecks(parsed.only, config.executor);
  const handle = runChecks(options, checks);

  // Ctrl-C or a kill mid-run: remove the probe containers before going.
  const onSignal = (signal: NodeJS.Signals) => {
    void handle.abort().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let results;
  try {
    results = await handle.results;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  if (parsed.json) {
    process.stdout.write(formatJson(results, { profile: config.profile, image: options.image, offline: options.offline }));
  } else {
    const header = `flashpods validate: host checklist (profile ${config.profile}${config.profile === 'dev' ? ' — on the host set FLASHPODS_PROFILE=production' : ''}; image ${options.image}${options.offline ? '; offline' : ''})`;
    process.stdout.write(formatText(results, header, process.stdout.isTTY === true && !process.env.NO_COLOR));
  }
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}
