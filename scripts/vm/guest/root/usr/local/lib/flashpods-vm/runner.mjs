/**
 * @module flashpods-vm runner (guest side; test machinery of scripts/flashpods-vm)
 * Runs one command per request for the host:
 *   GET  /ready → 200 "ok"
 *   POST /run {argv, user?, stdin?, env?, timeoutMs?}
 *        → 200 {code, signal, stdout, stderr, durationMs, timedOut}
 * A `user` other than root runs through runuser with HOME and XDG_RUNTIME_DIR of that user (so
 * rootless Podman finds its user manager). On timeout the command's process group is SIGKILLed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const PORT = 7000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_TIMEOUT_MS = 600_000;

function account(user) {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} in the guest`);
  const [, , uid, , , home] = line.split(':');
  return { uid: Number(uid), home };
}

function run({ argv, user = 'root', stdin, env = {}, timeoutMs = DEFAULT_TIMEOUT_MS }) {
  if (!Array.isArray(argv) || argv.length === 0) throw new Error('argv must be a non-empty array');
  const base = { PATH, LANG: 'C.UTF-8', HOME: '/root' };
  let command = argv;
  if (user !== 'root') {
    const { uid, home } = account(user);
    Object.assign(base, { HOME: home, XDG_RUNTIME_DIR: `/run/user/${uid}`, DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${uid}/bus` });
    command = ['runuser', '-u', user, '--', ...argv];
  }
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { cwd: '/', env: { ...base, ...env }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let timedOut = false;
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.on('error', (e) => err.push(Buffer.from(`${e.message}\n`)));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code, signal, timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        durationMs: Math.round(performance.now() - started),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');
  });
}

createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/ready') return res.end('ok');
  if (req.method !== 'POST' || req.url !== '/run') {
    res.statusCode = 404;
    return res.end();
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      const result = await run(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(result));
    } catch (e) {
      res.statusCode = 400;
      res.end(JSON.stringify({ error: e.message }));
    }
  });
}).listen(PORT, '0.0.0.0');
