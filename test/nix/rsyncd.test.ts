/**
 * The rsyncd.conf that nix/modules/rsyncd.nix renders, run by a real rsync daemon: only the
 * module path and the lock file are moved to a temp dir. It runs in the "host" namespace of the
 * throw-away topology of test/support/netns.ts, which owns 10.0.0.1 (the laptop is 10.0.0.2,
 * with a second address 10.0.0.3 on the same link). No firewall is loaded here: this is rsync's
 * own lock (`address`, `hosts allow`, `hosts deny`) and the module (chroot, write as flashpods).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, removeStaleNamespaces, Topology } from '../support/netns.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let topo: Topology | undefined;
let work: string;
let uploads: string;
let flashpodsUid: number;
let transfers: string;

function rsyncFrom(ns: string, args: string[]) {
  return topo!.execAsync(ns, 'rsync', ['--contimeout=3', ...args], 20_000);
}

describe('the rendered /etc/rsyncd.conf, run by a real rsync daemon', () => {
  beforeAll(async () => {
    assertCapable();
    try {
      flashpodsUid = Number(execFileSync('id', ['-u', 'flashpods'], { encoding: 'utf8' }).trim());
    } catch {
      throw new Error('user flashpods is missing: run `bash scripts/setup-podman.sh` as root first');
    }
    work = mkdtempSync(join(tmpdir(), 'fp-rsyncd-'));
    chmodSync(work, 0o755);
    const reportFile = join(work, 'report.json');
    const check = spawnSync('bash', [join(ROOT, 'scripts/nix-check.sh'), '--json', reportFile], { encoding: 'utf8', timeout: 300_000 });
    if (check.status !== 0) throw new Error(`scripts/nix-check.sh failed:\n${check.stdout}${check.stderr}`);
    const rendered: string = JSON.parse(readFileSync(reportFile, 'utf8')).deployed.environment.etc['rsyncd.conf'].text;

    uploads = join(work, 'uploads');
    mkdirSync(uploads);
    chownSync(uploads, flashpodsUid, flashpodsUid);
    transfers = join(work, 'transfers');
    // The hook is the package's copy of scripts/rsyncd/transfer-hook.sh: here, this checkout's.
    const conf = rendered
      .replace(/^(\s*path = )\/tmp\/flashpods\/uploads$/m, `$1${uploads}`)
      .replace(/^lock file = .*$/m, `lock file = ${join(work, 'rsyncd.lock')}`)
      .replace(/\/nix\/store\/[^/ ]+\/lib\/node_modules\/flashpods\/(scripts\/rsyncd\/transfer-hook\.sh) (start|end) \/run\/rsyncd\/transfers$/gm, `${ROOT}$1 $2 ${transfers}`);
    expect(conf.match(/^\s*(pre|post)-xfer exec = .*$/gm)).toEqual([
      `  pre-xfer exec = ${ROOT}scripts/rsyncd/transfer-hook.sh start ${transfers}`,
      `  post-xfer exec = ${ROOT}scripts/rsyncd/transfer-hook.sh end ${transfers}`,
    ]);
    writeFileSync(join(work, 'rsyncd.conf'), conf);

    removeStaleNamespaces();
    topo = Topology.create();
    topo.spawn(topo.ns.host, 'rsync', ['--daemon', '--no-detach', `--config=${join(work, 'rsyncd.conf')}`, `--log-file=${join(work, 'rsyncd.log')}`]);
    await topo.waitForListener(topo.ns.laptop, '10.0.0.1', 873);
  });

  afterAll(async () => {
    try {
      await topo?.destroy();
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });

  it('lists the uploads module to the laptop (10.0.0.2)', async () => {
    const r = await rsyncFrom(topo!.ns.laptop, ['rsync://10.0.0.1/']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^uploads\s+Flashpods uploads$/m);
  });

  it('takes an upload from the laptop and writes it as user flashpods (chroot, read-write module)', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'dir'), { recursive: true });
    writeFileSync(join(src, 'dir', 'hello.txt'), 'hello\n');
    chmodSync(src, 0o755);
    const r = await rsyncFrom(topo!.ns.laptop, ['-r', `${src}/`, 'rsync://10.0.0.1/uploads/up_1/']);
    expect(r.code, r.stderr).toBe(0);
    const file = join(uploads, 'up_1', 'dir', 'hello.txt');
    expect(readFileSync(file, 'utf8')).toBe('hello\n');
    expect(statSync(file).uid).toBe(flashpodsUid);
  });

  it('registers a transfer while it runs and unregisters it after (the register finalize reads)', async () => {
    const src = join(work, 'slow');
    mkdirSync(src);
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(1024 * 1024));
    chmodSync(src, 0o755);
    const slow = rsyncFrom(topo!.ns.laptop, ['-r', '--bwlimit=256', `${src}/`, 'rsync://10.0.0.1/uploads/upload_abcdefabcdef/']);
    // Entries of this transfer only (one of the previous test may still be ending), and only once
    // the hook has renamed its `.<pid>.tmp` into place, as finalize reads them (rsync-transfers.ts).
    const entryOf = (name: string) => { try { return readFileSync(join(transfers, name), 'utf8'); } catch { return ''; } };
    const mine = () => (existsSync(transfers) ? readdirSync(transfers) : []).filter((name) => !name.startsWith('.') && entryOf(name) === '/upload_abcdefabcdef/\0');
    let entries: string[] = [];
    // The daemon looks the client's name up first (no `reverse lookup = no` here): ~10 s without DNS.
    const deadline = Date.now() + 15_000;
    while (entries.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      entries = mine();
    }
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^[1-9][0-9]*$/);
    const r = await slow;
    expect(r.code, r.stderr).toBe(0);
    // post-xfer exec runs right after the daemon's side has ended.
    const gone = Date.now() + 2_000;
    while (existsSync(join(transfers, entries[0]!)) && Date.now() < gone) await new Promise((res) => setTimeout(res, 20));
    expect(readdirSync(transfers)).toEqual([]);
  });

  it('refuses another address on the same link (hosts allow = 10.0.0.2, hosts deny = *)', async () => {
    const r = await rsyncFrom(topo!.ns.laptop, ['--address=10.0.0.3', 'rsync://10.0.0.1/uploads/']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/access denied/);
  });

  it('listens on the tunnel address only (address = 10.0.0.1)', async () => {
    expect(await topo!.tcpProbe(topo!.ns.host, '127.0.0.1', 873)).toBe('refused');
    expect(await topo!.tcpProbe(topo!.ns.other, '10.0.1.1', 873)).toBe('refused');
  });
});
