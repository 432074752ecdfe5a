/**
 * `flashpods validate` — the host checklist of shared/spec/host.md — against a real host built in
 * network namespaces (test/support/validate-host.ts): the laptop behind `wg0`, the ruleset
 * nix/firewall/flashpods.nft loaded in the host namespace, a rootful Podman service running IN
 * that namespace (its containers reach the host through the real `podman0` bridge it creates), a
 * real SPIRE server + agent attesting those containers, the token unit and the API unit as user
 * flashpods, and an rsync daemon on 10.0.0.1:873. validate itself runs as root inside the host
 * namespace with the units' FLASHPODS_* environment, as an operator would on the host.
 *
 * Proven: on the correct setup every check passes (the internet one skipped by --offline, no
 * traffic outside the test's namespaces); the internet check against a namespace standing in for
 * the internet; then one thing broken at a time — the token unit stopped, the worker entry
 * unregistered, the firewall table deleted, a socket chmodded — and each time exactly the checks
 * that depend on it fail, with their hint, exit code 1, and everything else still passes; the
 * token socket's directory handed to the API's user (the layout before issue 10's hole 5 was
 * closed) or made group-writable fails the token socket check with how to fix it.
 * Restored after each. Also: job containers running as root fail the user check. The SVIDs and
 * tokens never appear in validate's output.
 *
 * Differences from a production host: Podman is rootful here (SPIRE's docker attestor cannot
 * attest rootless containers on these cgroup v1 machines, shared/notes/spire.md), so job
 * containers run on the rootful bridge instead of slirp4netns, and they are non-root because the
 * test image sets USER flashpods (production: rootless Podman with keep-id); the profile is dev
 * with every path set explicitly; `wg0` is a veth named like the tunnel.
 */
import { chmodSync, chownSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, FIREWALL_RULESET, removeStaleNamespaces } from '../support/netns.ts';
import { HOST_ID, SPIRE_AGENT_BIN, TRUST_DOMAIN_ID } from '../support/spire.ts';
import { API_PORT, HOST_ADDR, OUTSIDE_ADDR, ValidateHost, type ValidateRun } from '../support/validate-host.ts';

const WORKER_ID = `${TRUST_DOMAIN_ID}/worker`;
const ALL_CHECKS = ['spire-worker', 'spire-agent', 'tokens-agent', 'tokens-worker', 'firewall', 'internet', 'api-health', 'rsync', 'job', 'job-user',
  'socket-podman', 'socket-token', 'socket-spire', 'socket-api'];

let host: ValidateHost;
const timings: Record<string, number> = {};

const base = () => ['--image', host.image, '--spire-agent-bin', SPIRE_AGENT_BIN];
const full = () => ['--json', '--offline', ...base()];

async function validate(label: string, args: string[]): Promise<ValidateRun> {
  const run = await host.validate(args);
  timings[label] = run.ms;
  return run;
}

/** Nothing the token service handed out, and no JWT, in what validate printed. */
function expectNoSecrets(run: ValidateRun): void {
  const printed = run.stdout + run.stderr;
  expect(printed).not.toContain(host.secrets.anthropic_api_key);
  expect(printed).not.toContain(host.secrets.github_token);
  expect(printed).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}/);
}

/**
 * Exactly the `failing` checks fail (detail and hint as given), internet is skipped (--offline),
 * every other check passes, and the exit code says so.
 */
function expectOutcome(run: ValidateRun, failing: Record<string, { detail: RegExp; hint: RegExp }>): void {
  const report = run.report;
  expect(report, `no JSON report; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBeDefined();
  expect(report!.checks.map((c) => c.id)).toEqual(ALL_CHECKS);
  const seen = Object.fromEntries(report!.checks.map((c) => [c.id, c.status]));
  const want = Object.fromEntries(ALL_CHECKS.map((id) => [id, id in failing ? 'fail' : id === 'internet' ? 'skip' : 'pass']));
  expect(seen, JSON.stringify(report!.checks.filter((c) => c.status !== want[c.id]), null, 2)).toEqual(want);
  for (const [id, { detail, hint }] of Object.entries(failing)) {
    const check = report!.checks.find((c) => c.id === id)!;
    expect(check.detail).toMatch(detail);
    expect(check.hint).toMatch(hint);
  }
  expect(run.code).toBe(Object.keys(failing).length ? 1 : 0);
  expectNoSecrets(run);
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('flashpods validate on a host built from real components', () => {
  beforeAll(async () => {
    assertCapable();
    removeStaleNamespaces();
    host = await ValidateHost.start();
  }, 180_000);

  afterAll(async () => {
    try {
      await host?.destroy();
    } finally {
      console.log(`validate e2e timings (ms): setup ${JSON.stringify(host?.timings)}; runs ${JSON.stringify(timings)}`);
    }
  }, 120_000);

  it('the topology is the host of the contract: the laptop gets /health and the uploads module over wg0', async () => {
    const [health, listing] = await Promise.all([
      host.topo.httpGet(host.topo.ns.laptop, `http://${HOST_ADDR}:${API_PORT}/health`, 5_000),
      host.topo.execAsync(host.topo.ns.laptop, 'rsync', ['--contimeout=3', `rsync://${HOST_ADDR}/`], 15_000),
    ]);
    expect(health.status, JSON.stringify(health)).toBe(200);
    expect(listing.stdout, listing.stderr).toMatch(/^uploads\s/m);
  });

  it('passes every check on the correct setup; --offline skips the internet check and says so', async () => {
    const run = await validate('all pass', full());
    expectOutcome(run, {});
    const byId = Object.fromEntries(run.report!.checks.map((c) => [c.id, c]));
    expect(byId['spire-worker']!.detail).toContain(WORKER_ID);
    expect(byId['spire-agent']!.detail).toContain(`${TRUST_DOMAIN_ID}/agent`);
    expect(byId['tokens-agent']!.detail).toBe('ANTHROPIC_API_KEY issued, GITHUB_TOKEN issued (values not shown)');
    expect(byId['tokens-worker']!.detail).toBe('ANTHROPIC_API_KEY null, GITHUB_TOKEN issued (values not shown)');
    expect(byId.firewall!.detail).toBe(`API ${HOST_ADDR}:${API_PORT} timed out, rsync ${HOST_ADDR}:873 timed out`);
    expect(byId.internet!.detail).toMatch(/--offline/);
    expect(byId['api-health']!.detail).toMatch(new RegExp(`^healthy .* listening on ${HOST_ADDR.replaceAll('.', '\\.')}:${API_PORT}$`));
    expect(byId.rsync!.detail).toMatch(/lists uploads, open to 10\.0\.0\.2$/);
    expect(byId.job!.detail).toMatch(/^job job_\w+ completed, exit 0; \/artifacts\/test\.txt retrieved: "hello"/);
    expect(byId['job-user']!.detail).toMatch(new RegExp(`^uid ${host.uid} inside job job_\\w+ .*not root`));
    // Probe containers are gone, and none was ever taken for an orphan job container by the
    // running Flashpods (it reconciles every second here and removes unknown flashpods-job=true ones).
    expect(await host.leftovers()).toEqual([]);
    expect(host.api.output()).not.toContain('"event":"orphan_removed"');
  });

  it('the internet check: passes when a container gets an HTTP answer from outside the host, fails when it does not', async () => {
    // A namespace behind eth1 stands in for the internet: no packet leaves the test's namespaces.
    const server = host.outside([process.execPath, '-e', `require('node:http').createServer((q, s) => s.end('hi')).listen(8088, '${OUTSIDE_ADDR}')`]);
    await host.topo.waitForListener(host.topo.ns.other, OUTSIDE_ADDR, 8088);
    const [ok, nothing] = await Promise.all([
      validate('internet ok', ['--json', '--only', 'internet', ...base(), '--internet-url', `http://${OUTSIDE_ADDR}:8088/`]),
      validate('internet refused', ['--json', '--only', 'internet', ...base(), '--internet-url', `http://${OUTSIDE_ADDR}:8089/`]),
    ]);
    await server.stop();
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.report!.checks).toEqual([expect.objectContaining({ id: 'internet', status: 'pass', detail: `http://${OUTSIDE_ADDR}:8088/ answered HTTP/1.1 200 OK` })]);
    expect(nothing.code).toBe(1);
    expect(nothing.report!.checks).toEqual([expect.objectContaining({ id: 'internet', status: 'fail', detail: `a job container could not reach http://${OUTSIDE_ADDR}:8089/: refused` })]);
  });

  it('token unit stopped: the two exchanges fail with the token-service hint (text output, exit 1)', async () => {
    await host.stopTokens();
    const socketLeft = existsSync(host.sockets.token);
    try {
      const run = await validate('token unit stopped', ['--offline', ...base()]);
      expect(run.code, run.stdout + run.stderr).toBe(1);
      const failed = [...run.stdout.matchAll(/^FAIL {2}(\S+)/gm)].map((m) => m[1]);
      expect(failed).toEqual(['tokens-agent', 'tokens-worker', ...(socketLeft ? [] : ['socket-token'])]);
      expect(run.stdout).toMatch(new RegExp(`the token service is not answering on ${host.sockets.token} \\((ENOENT|ECONNREFUSED)\\)`));
      expect(run.stdout).toContain('hint: systemctl status flashpods-token-service; journalctl -u flashpods-token-service');
      expect(run.stdout).toMatch(/^PASS {2}spire-worker /m);
      expect(run.stdout).toMatch(/^SKIP {2}internet /m);
      expect(run.stdout.trim().split('\n').at(-1)).toBe(`${12 - failed.length + 1} passed, ${failed.length} failed, 1 skipped`);
      expectNoSecrets(run);
    } finally {
      await host.startTokens();
    }
  });

  it('worker entry unregistered (spire-server entry delete): worker attestation fails, and so does the worker exchange', async () => {
    const entryId = /Entry ID\s*:\s*(\S+)/.exec(await host.spire.server('entry', 'show', '-spiffeID', WORKER_ID))?.[1];
    expect(entryId).toBeDefined();
    await host.spire.server('entry', 'delete', '-entryID', entryId!);
    try {
      await until('agent dropped the worker entry', () => host.spire.logs().includes(`msg="Entry removed" entry=${entryId}`));
      const run = await validate('worker entry deleted', full());
      expectOutcome(run, {
        'spire-worker': { detail: /^no SVID for a container labelled flashpods-job-type=worker: .*PermissionDenied.*no identity issued/, hint: /^no registration entry matches docker:label:flashpods-job-type:worker: spire-server entry show/ },
        'tokens-worker': { detail: /^no worker SVID to exchange/, hint: /fix the SPIRE attestation check for worker first/ },
      });
    } finally {
      const created = await host.spire.server('entry', 'create', '-parentID', HOST_ID, '-spiffeID', WORKER_ID, '-selector', 'docker:label:flashpods-job-type:worker');
      const newId = /Entry ID\s*:\s*(\S+)/.exec(created)?.[1];
      await until('agent synced the new worker entry', () => host.spire.logs().includes(`msg="Creating X509-SVID" entry_id=${newId}`));
    }
  });

  it('firewall table deleted (nft delete table inet flashpods): a container reaches the API and rsync, the firewall check fails', async () => {
    host.topo.removeTable();
    try {
      const run = await validate('firewall table deleted', full());
      expectOutcome(run, {
        firewall: { detail: new RegExp(`^a job container got through: API ${HOST_ADDR}:${API_PORT} reached, rsync ${HOST_ADDR}:873 reached$`), hint: /table inet flashpods is MISSING.*nft list table inet flashpods/ },
      });
    } finally {
      host.topo.loadRuleset(FIREWALL_RULESET);
    }
  });

  it('a socket chmodded (token.sock 0666): that socket check fails with the chmod hint; restored, it passes again', async () => {
    chmodSync(host.sockets.token, 0o666);
    try {
      const run = await validate('token.sock chmod 0666', full());
      expectOutcome(run, {
        'socket-token': { detail: /token\.sock is flashpods-tokens:flashpods 0666, expected flashpods-tokens:flashpods 0660$/, hint: /^chown flashpods-tokens:flashpods .*token\.sock && chmod 0660 .*token\.sock, or restart flashpods-token-service/ },
      });
    } finally {
      chmodSync(host.sockets.token, 0o660);
    }
    const again = await validate('sockets restored', ['--json', '--only', 'socket', ...base()]);
    expect(again.code).toBe(0);
    expect(again.report!.checks.map((c) => `${c.id} ${c.status}`)).toEqual(['socket-podman pass', 'socket-token pass', 'socket-spire pass', 'socket-api pass']);
  });

  it('token socket where the API user could replace it: the socket check fails and says how to move it', async () => {
    const dir = host.tokenRunDir;
    const { uid: tokenUid } = host.tokenUser;
    const only = ['--json', '--only', 'socket-token', ...base()];
    try {
      // The layout before hole 5 was closed: the socket's directory belongs to the API's user.
      chownSync(dir, host.uid, host.gid);
      const apiOwned = await validate('token dir owned by the API user', only);
      expect(apiOwned.code, apiOwned.stdout + apiOwned.stderr).toBe(1);
      expect(apiOwned.report!.checks).toEqual([expect.objectContaining({
        id: 'socket-token', status: 'fail',
        detail: `${host.sockets.token} can be replaced by others than flashpods-tokens: ${dir} is flashpods:flashpods 02750`,
        hint: expect.stringMatching(/^move the socket out of flashpods's reach: FLASHPODS_TOKEN_SOCKET=\/run\/flashpods-tokens\/token\.sock for both units, in a directory flashpods-tokens:flashpods 2750, .*\/run\/flashpods\/token\.sock is no longer served/),
      })]);
      // The token user's, but group-writable: the API's group could swap it.
      chownSync(dir, tokenUid, host.gid);
      chmodSync(dir, 0o2770);
      const groupWritable = await validate('token dir group-writable', only);
      expect(groupWritable.code).toBe(1);
      expect(groupWritable.report!.checks).toEqual([expect.objectContaining({
        id: 'socket-token', status: 'fail',
        detail: `${host.sockets.token} can be replaced by others than flashpods-tokens: ${dir} is flashpods-tokens:flashpods 02770`,
        hint: `chmod 2750 ${dir} (owner flashpods-tokens or root, group flashpods, writable by the owner only)`,
      })]);
    } finally {
      chownSync(dir, tokenUid, host.gid);
      chmodSync(dir, 0o2750);
    }
    const restored = await validate('token dir restored', only);
    expect(restored.code).toBe(0);
    expect(restored.report!.checks).toEqual([expect.objectContaining({
      id: 'socket-token', status: 'pass', detail: `${host.sockets.token} flashpods-tokens:flashpods 0660; only root and flashpods-tokens can replace it`,
    })]);
  });

  it('job containers running as root (an image without USER on rootful Podman): the user check fails with the rootless hint', async () => {
    const run = await validate('job as root', ['--json', '--only', 'job', '--image', 'localhost/busybox:test']);
    expect(run.code).toBe(1);
    const [job, user] = run.report!.checks;
    // Root without capabilities may not write into the flashpods-owned artifacts directory either.
    expect(job).toMatchObject({ id: 'job', status: 'fail', detail: expect.stringMatching(/ended failed, exit 1 .*Permission denied/) });
    expect(user).toMatchObject({ id: 'job-user', status: 'fail', detail: expect.stringMatching(/^job containers run as root: uid 0 inside job job_\w+/), hint: expect.stringContaining('rootless Podman with keep-id') });
  });

  it('bad arguments exit 2 before anything is probed', async () => {
    const run = await validate('usage error', ['--only', 'nope']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^flashpods validate: --only: no check "nope"; checks: spire-worker, /);
    expect(run.stdout).toBe('');
  });
});
