/**
 * Identity end to end, through REAL Flashpods jobs: a real SPIRE server + agent attesting
 * containers of a real rootful Podman from their labels, the token unit as its own process
 * (`flashpods serve --actors tokens`), and a real `flashpods serve` whose agent containers, and
 * worker containers created with need_github_token, get the SPIRE and token sockets mounted —
 * other workers get neither (issue 10, hole 5). The agent job runs the real /entrypoint.sh
 * (images/agent/entrypoint.sh) in localhost/flashpods-agent:test, with a stand-in coding agent
 * that runs the job's task as a shell script; workers run localhost/flashpods-worker:test, whose
 * ENTRYPOINT is images/worker/flashpods-tokens. Both images: scripts/build-test-images.sh.
 *
 * Secrets are random per run and never printed: containers prove what they got by comparing
 * sha256 sums with the ones in their task/command. The last test greps every log and artifact
 * the run produced for them.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRYPOINT_EXIT_CODES, JOB_ERRORS } from '../../actors/contract/jobs.ts';
import { makeGitUpload, REMOTE_IN_CONTAINER, startIdentityStack, WORKER_TEST_IMAGE, type IdentityStack } from '../support/identity.ts';
import { SPIRE_AGENT_BIN } from '../support/spire.ts';
import { createJob, json, until, waitForJob } from '../support/stack.ts';

const pexec = promisify(execFile);
const TD = 'spiffe://flashpods.local';
const BRANCH = 'feature/identity-e2e';
const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

let s: IdentityStack;
const figures: Record<string, number | string> = {};
const jobIds: string[] = [];

beforeAll(async () => {
  const t0 = Date.now();
  s = await startIdentityStack();
  figures.stackReadyMs = Date.now() - t0;
  Object.assign(figures, s.timings);
}, 180_000);

afterAll(async () => {
  await s?.stop();
  console.log('identity e2e figures:', JSON.stringify(figures));
});

async function output(id: string): Promise<string> {
  return (await json(await s.server.fetch(`/jobs/${id}/output?tail=10000`))).output as string;
}

/** POST /jobs, wait until terminal, return the job, its log and the wall time. */
async function runJob(name: string, body: Record<string, unknown>, timeoutMs = 60_000): Promise<{ job: any; log: string }> {
  const t0 = Date.now();
  const created = await createJob(s.server, { cpus: 1, memory_gb: 1, ...body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  jobIds.push(created.body.job_id);
  const job = await waitForJob(s.server, created.body.job_id, { exitCode: true, timeoutMs });
  figures[`${name}Ms`] = Date.now() - t0;
  return { job, log: await output(job.id) };
}

async function spireAgentAnswers(): Promise<boolean> {
  return pexec(SPIRE_AGENT_BIN, ['healthcheck', '-shallow', '-socketPath', s.spire.agentSocket], { timeout: 5_000 }).then(() => true, () => false);
}

/** Shell: `verdict NAME VALUE SHA` prints NAME=match or NAME=MISMATCH; the value goes to sha256sum on stdin. */
const SH_VERDICT = `
sum() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
verdict() { if [ "$(sum "$2")" = "$3" ]; then echo "$1=match"; else echo "$1=MISMATCH"; fi; }
`;

/** Shell: says for each identity socket whether the container has it ("mounted" or "absent"). */
const SH_SOCKETS = `for s in /run/flashpods/token.sock /run/spire/sockets/agent.sock; do
  if [ -S "$s" ]; then echo "socket $s: mounted"; elif [ -e "$s" ]; then echo "socket $s: NOT A SOCKET"; else echo "socket $s: absent"; fi
done`;

describe('identity through real Flashpods jobs (SPIRE, token unit, rootful Podman)', () => {
  it('the shell identity step uses the reserved exit codes of contract/jobs.ts', () => {
    const shell = readFileSync(new URL('../../images/lib/identity.sh', import.meta.url), 'utf8');
    const spire = Number(/^FP_EXIT_SPIRE_ATTESTATION_TIMEOUT=(\d+)$/m.exec(shell)?.[1]);
    const tokens = Number(/^FP_EXIT_TOKEN_EXCHANGE_FAILED=(\d+)$/m.exec(shell)?.[1]);
    expect(ENTRYPOINT_EXIT_CODES[spire]).toBe(JOB_ERRORS.spireAttestationTimeout);
    expect(ENTRYPOINT_EXIT_CODES[tokens]).toBe(JOB_ERRORS.tokenExchangeFailed);
    expect(Object.keys(ENTRYPOINT_EXIT_CODES).map(Number).sort()).toEqual([spire, tokens].sort());
  });

  it('an agent job runs the entrypoint end to end: tokens, branch, agent, commit, push, patch and summary', async () => {
    const { secrets } = s;
    const upload = makeGitUpload(s.home, { 'README.md': '# demo\n', 'src/app.txt': 'app\n' });
    const finalized = await json(await s.server.fetch(`/uploads/${upload.id}/finalize`, { method: 'POST' }));
    expect(finalized.state).toBe('finalized');
    const task = `# add a greeting to README and a new file
set -u
${SH_VERDICT}
echo "keys: $(verdict ANTHROPIC_API_KEY "\${ANTHROPIC_API_KEY:-}" ${sha256(secrets.anthropic_api_key)}) $(verdict GITHUB_TOKEN "\${GITHUB_TOKEN:-}" ${sha256(secrets.github_token)})"
echo "pwd: $(pwd)"
${SH_SOCKETS}
echo "branch: $(git rev-parse --abbrev-ref HEAD)"
echo "prompt on stdin: $(head -n 1)"
grep -q 'context-marker-7f3a' "$FLASHPODS_PROMPT_FILE" && echo "context: in the prompt file"
if printf '%s\\n' "$ANTHROPIC_API_KEY" "$GITHUB_TOKEN" | grep -sqF -f /dev/stdin /proc/[0-9]*/cmdline; then
  echo "cmdline: LEAK"
else
  echo "cmdline: clean in $(ls -d /proc/[0-9]* | wc -l) processes"
fi
cred=$(printf 'protocol=https\\nhost=github.com\\n\\n' | git credential fill 2>/dev/null | sed -n 's/^password=//p')
echo "credential helper github.com: $(verdict GITHUB_TOKEN "$cred" ${sha256(secrets.github_token)})"
other=$(printf 'protocol=https\\nhost=example.com\\n\\n' | git credential fill 2>/dev/null | sed -n 's/^password=//p')
if [ -z "$other" ]; then echo "credential helper example.com: nothing"; else echo "credential helper example.com: GOT ONE"; fi
echo "agent was here" >> README.md
mkdir -p src && echo "new file from the agent" > src/new-file.txt
echo "stand-in agent done"
`;
    const { job, log } = await runJob('agentJob', { type: 'agent', task, context: 'context-marker-7f3a', git_branch: BRANCH, files_id: upload.id });
    expect(job, log).toMatchObject({ status: 'completed', exit_code: 0, git_branch: BRANCH });
    expect(job.error).toBeUndefined();
    figures.agentJobContainerSeconds = job.duration_seconds;

    // The identity step, then the stand-in's own checks.
    expect(log).toContain(`flashpods: attested as ${TD}/agent; exchanging a JWT-SVID for tokens`);
    expect(log).toContain('flashpods: tokens received for spiffe://flashpods.local/agent: ANTHROPIC_API_KEY, GITHUB_TOKEN');
    expect(log).toContain('keys: ANTHROPIC_API_KEY=match GITHUB_TOKEN=match');
    expect(log).toContain('pwd: /work');
    expect(log).toContain('socket /run/flashpods/token.sock: mounted');
    expect(log).toContain('socket /run/spire/sockets/agent.sock: mounted');
    expect(log).toContain(`branch: ${BRANCH}`);
    expect(log).toContain('prompt on stdin: # add a greeting to README and a new file');
    expect(log).toContain('context: in the prompt file');
    expect(log).toMatch(/cmdline: clean in \d+ processes/);
    expect(log).toContain('credential helper github.com: GITHUB_TOKEN=match');
    expect(log).toContain('credential helper example.com: nothing');
    expect(log).toContain('stand-in agent done');

    // Artifacts, through the API.
    const listed = await json(await s.server.fetch(`/jobs/${job.id}/artifacts`));
    expect(listed.artifacts.map((a: any) => a.name).sort()).toEqual(['changes.patch', 'remote-received.txt', 'summary.md']);
    const artifact = async (name: string) => (await s.server.fetch(`/jobs/${job.id}/artifacts/${name}`)).text();
    const patch = await artifact('changes.patch');
    expect(patch).toContain('diff --git a/README.md b/README.md');
    expect(patch).toContain('+agent was here');
    expect(patch).toContain('diff --git a/src/new-file.txt b/src/new-file.txt');
    expect(patch).toContain('+new file from the agent');
    const summary = await artifact('summary.md');
    const head = /- head: `([0-9a-f]{40})`/.exec(summary)?.[1];
    expect(head, summary).toBeDefined();
    expect(summary).toContain(`- branch: \`${BRANCH}\``);
    expect(summary).toContain(`- base: \`${upload.baseSha}\``);
    expect(summary).toContain(`- push: pushed ${head} to origin as refs/heads/${BRANCH} (confirmed with ls-remote)`);
    expect(summary).toContain('README.md');
    expect(summary).toContain('src/new-file.txt');
    expect(log).toContain(`To ${REMOTE_IN_CONTAINER}`);

    // The remote's own account of the push (its post-receive hook ran inside the job).
    const received = await artifact('remote-received.txt');
    expect(received.trim()).toBe(`refs/heads/${BRANCH} ${head} Flashpods Agent <flashpods@local>|Flashpods agent: # add a greeting to README and a new file`);
  });

  it('an agent job whose changes contain a token commits, pushes and reports nothing of them', async () => {
    const upload = makeGitUpload(s.home, { 'README.md': '# demo\n' });
    await s.server.fetch(`/uploads/${upload.id}/finalize`, { method: 'POST' });
    const { job, log } = await runJob('leakingAgentJob', {
      type: 'agent', git_branch: 'leak', files_id: upload.id,
      task: 'echo fine > ok.txt; printf "token: %s\\n" "$GITHUB_TOKEN" > config.txt; echo "wrote config"',
    });
    expect(job, log).toMatchObject({ status: 'failed', exit_code: 1 });
    // A plain failure (jobs.md: every failed job carries an error), not an identity one.
    expect(job.error).toBe('Process exited with code 1');
    expect(log).toContain('wrote config');
    expect(log).toContain('flashpods: the changes contain a credential: refusing to commit, push or report them');
    const listed = await json(await s.server.fetch(`/jobs/${job.id}/artifacts`));
    expect(listed.artifacts.map((a: any) => a.name)).toEqual(['summary.md']); // no patch, and the remote received nothing
    expect(await (await s.server.fetch(`/jobs/${job.id}/artifacts/summary.md`)).text()).toContain('Refused: the changes contain a credential');
  });

  it("an agent command's own exit 90 is reported as 1, not as an identity failure; its work is still reported", async () => {
    const { job, log } = await runJob('agentExit90Job', { type: 'agent', git_branch: 'partial', task: 'echo partial > f.txt; exit 90' });
    expect(job, log).toMatchObject({ status: 'failed', exit_code: 1 });
    // A plain failure (jobs.md: every failed job carries an error), not an identity one.
    expect(job.error).toBe('Process exited with code 1');
    expect(log).toContain('flashpods: the coding agent exited with 1');
    const summary = await (await s.server.fetch(`/jobs/${job.id}/artifacts/summary.md`)).text();
    expect(summary).toContain('- coding agent exit code: 1');
    expect(summary).toContain('not pushed: the repository has no remote');
    expect(summary).toContain('was not a git repository: initialised one');
    expect(await (await s.server.fetch(`/jobs/${job.id}/artifacts/changes.patch`)).text()).toContain('+partial');
  });

  it('a worker job with need_github_token gets GITHUB_TOKEN and no ANTHROPIC_API_KEY; without it, nothing', async () => {
    const { secrets } = s;
    const command = `set -u
${SH_VERDICT}
echo "worker $(verdict GITHUB_TOKEN "\${GITHUB_TOKEN:-}" ${sha256(secrets.github_token)})"
if [ -z "\${ANTHROPIC_API_KEY+x}" ]; then echo "worker ANTHROPIC_API_KEY unset"; else echo "worker ANTHROPIC_API_KEY SET"; fi
echo "flag=\${FLASHPODS_NEED_GITHUB_TOKEN:-none}"
${SH_SOCKETS}`;
    const { job, log } = await runJob('workerWithTokenJob', { type: 'worker', image: WORKER_TEST_IMAGE, need_github_token: true, command });
    expect(job, log).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(log).toContain(`flashpods: attested as ${TD}/worker; exchanging a JWT-SVID for tokens`);
    expect(log).toContain(`flashpods: tokens received for ${TD}/worker: GITHUB_TOKEN`);
    expect(log).toContain('worker GITHUB_TOKEN=match');
    expect(log).toContain('worker ANTHROPIC_API_KEY unset');
    expect(log).toContain('flag=true');
    expect(log).toContain('socket /run/flashpods/token.sock: mounted');
    expect(log).toContain('socket /run/spire/sockets/agent.sock: mounted');

    const plain = await runJob('workerWithoutTokenJob', {
      type: 'worker', image: WORKER_TEST_IMAGE,
      command: 'if [ -z "${GITHUB_TOKEN+x}${ANTHROPIC_API_KEY+x}" ]; then echo "no tokens"; fi; echo "flag=${FLASHPODS_NEED_GITHUB_TOKEN:-none}"',
    });
    expect(plain.job).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(plain.log).toContain('no tokens');
    expect(plain.log).toContain('flag=none');
    expect(plain.log).not.toContain('attested as');

    const bad = await createJob(s.server, { type: 'worker', command: 'true', need_github_token: 'yes' });
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalid_json' } });
  });

  it('a worker without need_github_token has neither identity socket, and no way to GITHUB_TOKEN (as a hostile install script would try)', async () => {
    const exchangesBefore = s.tokens.lines().filter((l) => l.event === 'token_exchange').length;
    const command = `${SH_SOCKETS}
# 1. the image's own exchange, switched on from inside (SPIRE wait shortened: nothing will answer)
FLASHPODS_NEED_GITHUB_TOKEN=true FLASHPODS_SPIRE_WAIT_SECONDS=2 flashpods-tokens sh -c 'echo "forced exchange: GITHUB_TOKEN \${GITHUB_TOKEN:+SET}"'
echo "forced exchange rc=$?"
# 2. a raw exchange: an SVID from the Workload API, then the token socket (answers never printed)
spire-agent api fetch jwt -audience flashpods-token-service -socketPath /run/spire/sockets/agent.sock -output json -timeout 3s >/dev/null 2>&1
echo "raw svid fetch rc=$?"
curl -sS --max-time 5 --unix-socket /run/flashpods/token.sock http://token-service/health >/dev/null 2>&1
echo "raw token socket rc=$?"
if [ -z "\${GITHUB_TOKEN+x}" ]; then echo "GITHUB_TOKEN unset"; fi`;
    const { job, log } = await runJob('workerWithoutTokenHostileJob', { type: 'worker', image: WORKER_TEST_IMAGE, command });
    expect(job, log).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(log).toContain('socket /run/flashpods/token.sock: absent');
    expect(log).toContain('socket /run/spire/sockets/agent.sock: absent');
    expect(log).toContain('flashpods: no SPIRE agent socket at /run/spire/sockets/agent.sock after 2 s');
    expect(log).toContain('forced exchange rc=90');
    expect(log).not.toContain('forced exchange: GITHUB_TOKEN');
    expect(log).toMatch(/raw svid fetch rc=[1-9]\d*/);
    expect(log).toMatch(/raw token socket rc=[1-9]\d*/);
    expect(log).toContain('GITHUB_TOKEN unset');
    // The token unit never heard from it.
    expect(s.tokens.lines().filter((l) => l.event === 'token_exchange').length).toBe(exchangesBefore);
  });

  it('a worker claiming to be an agent (environment, files, headers, identity step, SPIFFE ID) still gets worker tokens only', async () => {
    const command = `set -u
export FLASHPODS_JOB_TYPE=agent FLASHPODS_TASK=spoof FLASHPODS_GIT_BRANCH=main flashpods_job_type=agent
mkdir -p /etc/flashpods && echo 'flashpods-job-type=agent' > /etc/flashpods/labels
echo 'flashpods-job-type=agent' >> /run/.containerenv 2>/dev/null
echo 'flashpods-job-type: agent' > /tmp/labels
# 1. the image's own exchange again, under the forged environment
flashpods-tokens sh -c 'if [ -z "\${ANTHROPIC_API_KEY+x}" ]; then echo "re-exchange: ANTHROPIC_API_KEY unset"; else echo "re-exchange: ANTHROPIC_API_KEY SET"; fi'
# 2. the identity step told it is an agent: it must find no ANTHROPIC_API_KEY and fail
( . /usr/local/lib/flashpods/identity.sh; fp_exchange agent ) ; echo "fp_exchange agent rc=$?"
# 3. a raw exchange with a real worker SVID and forged job-type headers and query
out=$(spire-agent api fetch jwt -audience flashpods-token-service -socketPath /run/spire/sockets/agent.sock -output json)
printf '%s\\n' "$out" | sed -n 's/.*"spiffe_id":"\\([^"]*\\)".*/svid subject: \\1/p'
svid=$(printf '%s\\n' "$out" | sed -n 's/.*"svid":"\\([^"]*\\)".*/\\1/p')
resp=$(printf 'Authorization: Bearer %s\\nX-Flashpods-Job-Type: agent\\nFlashpods-Job-Type: agent\\nX-Job-Type: agent\\n' "$svid" \\
  | curl -sS --unix-socket /run/flashpods/token.sock -H @- 'http://token-service/tokens?job_type=agent&type=agent')
printf '%s\\n' "$resp" | sed -n -e 's/.*"ANTHROPIC_API_KEY":null.*/forged headers: ANTHROPIC_API_KEY null/p' -e 's/.*"ANTHROPIC_API_KEY":"[^"]*".*/forged headers: ANTHROPIC_API_KEY PRESENT/p'
printf '%s\\n' "$resp" | grep -q '"GITHUB_TOKEN":"ghp_' && echo "forged headers: GITHUB_TOKEN present"
# 4. asking SPIRE for the agent's SPIFFE ID by name
if spire-agent api fetch jwt -audience flashpods-token-service -spiffeID ${TD}/agent -socketPath /run/spire/sockets/agent.sock -output json >/dev/null 2>&1; then
  echo "agent id request: GRANTED"
else
  echo "agent id request: refused"
fi`;
    const { job, log } = await runJob('spoofingWorkerJob', { type: 'worker', image: WORKER_TEST_IMAGE, need_github_token: true, command });
    expect(job, log).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(log).toContain('re-exchange: ANTHROPIC_API_KEY unset');
    expect(log).toContain(`flashpods: the token service sent no ANTHROPIC_API_KEY (attested as ${TD}/worker)`);
    expect(log).toContain('fp_exchange agent rc=91');
    expect(log).toContain(`svid subject: ${TD}/worker`);
    expect(log).toContain('forged headers: ANTHROPIC_API_KEY null');
    expect(log).toContain('forged headers: GITHUB_TOKEN present');
    expect(log).toContain('agent id request: refused');
    for (const bad of ['ANTHROPIC_API_KEY SET', 'ANTHROPIC_API_KEY PRESENT', 'GRANTED']) expect(log).not.toContain(bad);
    expect(log).not.toContain(`attested as ${TD}/agent`);

    const granted = s.tokens.lines().filter((l) => l.event === 'token_exchange' && l.outcome === 'granted');
    expect(new Set(granted.map((l) => l.spiffeId))).toEqual(new Set([`${TD}/agent`, `${TD}/worker`]));
  });

  it('with the token service stopped, an agent job fails with token_exchange_failed', async () => {
    await s.tokens.stop();
    try {
      const { job, log } = await runJob('tokenServiceDownJob', { type: 'agent', task: 'echo never runs', git_branch: 'x' });
      expect(job, log).toMatchObject({ status: 'failed', exit_code: 91, error: JOB_ERRORS.tokenExchangeFailed });
      expect(log).toContain(`flashpods: attested as ${TD}/agent`);
      expect(log).toContain('flashpods: token exchange 3/3');
      expect(log).toContain('flashpods: token_exchange_failed (exit 91)');
      expect(log).not.toContain('never runs');
    } finally {
      await s.tokens.start();
    }
  });

  it('with the SPIRE agent stopped, an agent job fails with spire_attestation_timeout', async () => {
    const restarted = s.spire.restartAgent({ downMs: 14_000 });
    try {
      await until(async () => !(await spireAgentAnswers()), 10_000, 'the SPIRE agent down');
      const { job, log } = await runJob('spireDownJob', { type: 'agent', task: 'echo never runs', git_branch: 'x' });
      expect(job, log).toMatchObject({ status: 'failed', exit_code: 90, error: JOB_ERRORS.spireAttestationTimeout });
      expect(log).toMatch(/flashpods: (no SPIRE agent socket at|the SPIRE agent socket) .*after 10 s/);
      expect(log).toContain('flashpods: spire_attestation_timeout (exit 90)');
      expect(log).not.toContain('never runs');
    } finally {
      await restarted;
    }
  }, 60_000);

  it('no secret appears in any log or artifact the run produced', async () => {
    const texts: Record<string, string> = {
      'flashpods serve (API unit) log': s.server.rawOutput(),
      'flashpods serve --actors tokens log': s.tokens.output(),
      'SPIRE server and agent logs': s.spire.logs(),
    };
    const walk = (dir: string, label: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path, `${label}/${name}`);
        else texts[`${label}/${name}`] = readFileSync(path, 'utf8');
      }
    };
    walk(join(s.home, 'logs'), 'job log');
    walk(join(s.home, 'artifacts'), 'artifact');
    for (const id of jobIds) texts[`GET /jobs/${id}/output`] = await output(id);
    const jobLogs = Object.keys(texts).filter((k) => k.startsWith('job log/'));
    expect(jobLogs.length).toBeGreaterThanOrEqual(jobIds.length);
    expect(Object.keys(texts).filter((k) => k.startsWith('artifact/')).length).toBeGreaterThanOrEqual(3);

    const jws = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;
    for (const [where, text] of Object.entries(texts)) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const secret of [s.secrets.anthropic_api_key, s.secrets.github_token]) {
        expect(text.includes(secret), `${where} holds a secret`).toBe(false);
      }
      expect(jws.exec(text)?.[0], `${where} holds a JWT`).toBeUndefined();
    }
    figures.textsChecked = Object.keys(texts).length;
    figures.bytesChecked = Object.values(texts).reduce((n, t) => n + t.length, 0);
    // The token unit logged every exchange with its SPIFFE ID and outcome.
    const outcomes = new Set(s.tokens.lines().filter((l) => l.event === 'token_exchange').map((l) => `${l.outcome} ${l.spiffeId}`));
    expect(outcomes).toEqual(new Set([`granted ${TD}/agent`, `granted ${TD}/worker`]));
  });
});
