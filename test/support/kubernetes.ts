/**
 * @module test/support/kubernetes
 * A real single-node Kubernetes for tests (issue 16; shared/notes/kubernetes-here.md): etcd,
 * kube-apiserver (token authentication, Node + RBAC authorization), kube-controller-manager,
 * kube-scheduler, containerd (Debian's, with its own config) and the kubelet, all started from
 * the binaries scripts/setup-kubernetes.sh builds, all inside a network namespace of their own.
 *
 * Why a namespace: the components' fixed ports (etcd 2379/2380, kubelet 10250, …) cannot clash
 * with anything on the host, the CNI bridge and its addresses live there, and removing it
 * removes every interface. A veth pair joins it to the host: the API server and the kubelet
 * listen on the namespace's end, a non-loopback node address, which the API server needs to
 * proxy logs, attach and exec to the kubelet ("no preferred addresses found" otherwise).
 *
 * Credentials: the test process gets an admin kubeconfig (system:masters, for setting up and
 * inspecting only) and `flashpodsKubeconfig`, a token of the ServiceAccount that
 * deploy/kubernetes/flashpods-rbac.yaml — applied verbatim — binds to its Role, so a test that
 * drives jobs with it proves the manifest grants enough. No registry: the images a test names are
 * copied from rootful Podman (`podman save --format oci-archive` → `ctr images import`), the pause
 * image is made from localhost/busybox:test, and Pods use imagePullPolicy Never.
 *
 * stop() leaves nothing behind: it deletes the Pods through the API (so the kubelet tears down
 * sandboxes and their network namespaces), stops the daemons, kills what is left in the
 * cluster's cgroup tree or names its directory, unmounts what was mounted under it, removes the
 * cgroups, the network namespace and the directory; leftovers() says what, if anything, remains.
 * Requires root and scripts/setup-kubernetes.sh (+ scripts/setup-podman.sh for the images).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { request } from 'node:https';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, loadAllYaml, RbacAuthorizationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { CONTAINERS_CONF, TEST_IMAGE } from './podman.ts';

export const KUBERNETES_VERSION = 'v1.37.2';
export const KUBERNETES_BIN_DIR = process.env.FLASHPODS_KUBERNETES_BIN_DIR ?? `/usr/local/lib/flashpods/kubernetes/${KUBERNETES_VERSION}`;
/** The manifest operators apply; the cluster applies this very file. */
export const RBAC_MANIFEST = fileURLToPath(new URL('../../deploy/kubernetes/flashpods-rbac.yaml', import.meta.url));
/** Namespace and ServiceAccount the manifest creates. */
export const FLASHPODS_NAMESPACE = 'flashpods';
export const FLASHPODS_SERVICE_ACCOUNT = 'flashpods';
export const NODE_NAME = 'fp-node';
/** The sandbox ("pause") image: busybox whose PID 1 reaps the orphans a shared PID namespace hands it. */
export const PAUSE_IMAGE = 'localhost/flashpods-pause:test';
const PAUSE_CMD = ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'];
const SETUP_HINT = 'run `bash scripts/setup-kubernetes.sh` as root first';
const POD_SUBNET = '10.244.0.0/24';
const CNI_NETWORK = 'flashpods-test';
const SERVICE_RANGE = '10.96.0.0/24';
/**
 * kube-controller-manager's --node-monitor-grace-period here (50 s by default): how long the node
 * may not report before its Pods are marked not ready. Shorter so a test of a node going silent
 * takes seconds, not minutes; 10 times the kubelet's 2 s status period, so a busy test machine
 * does not make a live node look silent.
 */
export const NODE_MONITOR_GRACE_SECONDS = 20;

export interface KubernetesClusterOptions {
  /** Images to import into containerd besides the pause image (default: localhost/busybox:test). */
  images?: string[];
}

export interface KubernetesCluster {
  dir: string;
  /** https://<node address>:6443, reachable from the host. */
  apiUrl: string;
  /** The CA of the API server's (and the kubelet's) serving certificates. */
  caFile: string;
  /** system:masters: for the test's own setup and inspection, never for what Flashpods does. */
  adminKubeconfig: string;
  /** The ServiceAccount `flashpods`, with exactly the manifest's Role (token valid 1 h). */
  flashpodsKubeconfig: string;
  namespace: string;
  nodeName: string;
  /** The namespace end of the veth: the node's InternalIP, where the API server and kubelet listen. */
  nodeIp: string;
  /** The network namespace (under /run/netns) the cluster runs in. */
  netns: string;
  /** The kubelet's cgroup root (`/<name>` in every v1 hierarchy). */
  cgroupRoot: string;
  timings: { apiserverReadyMs: number; nodeReadyMs: number; imagesMs: number; totalMs: number };
  /** A client certificate (user = CN) from the cluster's CA, which the API server and the kubelet trust. */
  clientCertificate(commonName: string): { cert: string; key: string };
  /** The daemons' logs, by name. */
  logs(): Record<string, string>;
  /**
   * The node going silent: its kubelet SIGKILLed, the containers it started left running. The
   * controller-manager marks the node's Pods not ready NODE_MONITOR_GRACE_SECONDS later.
   */
  killKubelet(): Promise<void>;
  /** The kubelet started again; resolves once the node is Ready. */
  startKubelet(): Promise<void>;
  stop(): Promise<void>;
  /** What this cluster left on the host after stop(): processes, mounts, cgroups, netns, files. */
  leftovers(): string[];
}

interface Daemon {
  name: string;
  child: ChildProcess;
  log: string;
  exited(): string | undefined;
  stop(): Promise<void>;
  /** SIGKILL to its process group, as a machine dying would; resolves once it has exited. */
  kill(): Promise<void>;
}

function run(cmd: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function runAsync(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, ...(env ? { env } : {}) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const tail = (path: string, lines = 20): string => {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
};

/** A daemon in the cluster's network namespace, its own process group, output to `log`. */
function daemon(name: string, netns: string, bin: string, args: string[], log: string): Daemon {
  const fd = openSync(log, 'a');
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', bin, ...args], { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const signal = (sig: NodeJS.Signals): void => {
    try { process.kill(-child.pid!, sig); } catch { /* gone */ }
  };
  const onExit = (): void => signal('SIGKILL');
  process.once('exit', onExit);
  const exited = (): string | undefined =>
    child.exitCode !== null || child.signalCode !== null ? `${name} exited (${child.exitCode ?? child.signalCode}):\n${tail(log)}` : undefined;
  return {
    name, child, log, exited,
    async stop() {
      process.off('exit', onExit);
      if (exited()) return;
      const gone = new Promise((r) => child.once('exit', r));
      signal('SIGTERM');
      const hard = setTimeout(() => signal('SIGKILL'), 10_000);
      await gone;
      clearTimeout(hard);
    },
    async kill() {
      process.off('exit', onExit);
      if (exited()) return;
      const gone = new Promise((r) => child.once('exit', r));
      signal('SIGKILL');
      await gone;
    },
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, died: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = died();
    if (dead) throw new Error(`${what}: ${dead}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GET `path` on the API server with a bearer token; resolves with the status code. */
function apiStatus(apiUrl: string, ca: string, token: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${apiUrl}${path}`, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function kubeconfig(apiUrl: string, caFile: string, user: string, token: string, namespace?: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fp', cluster: { server: apiUrl, 'certificate-authority-data': readFileSync(caFile).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'fp', context: { cluster: 'fp', user, ...(namespace ? { namespace } : {}) } }],
    'current-context': 'fp',
  }, null, 2);
}

const openssl = (...args: string[]): string => run('openssl', args);
const ecKey = (path: string): string => openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', path);

/** `<name>.crt` and `<name>.key` in `dir`, signed by the CA there, with openssl x509 extensions `ext`. */
function signCertificate(dir: string, name: string, subject: string, ext: string): { cert: string; key: string } {
  const [key, csr, cert, extFile] = ['key', 'csr', 'crt', 'ext'].map((e) => join(dir, `${name}.${e}`)) as [string, string, string, string];
  ecKey(key);
  openssl('req', '-new', '-key', key, '-subj', subject, '-out', csr);
  writeFileSync(extFile, ext);
  openssl('x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', extFile, '-out', cert);
  return { cert, key };
}

/** CA, serving and client certificates (EC P-256) with openssl. */
function makePki(dir: string, nodeIp: string): void {
  ecKey(join(dir, 'ca.key'));
  openssl('req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-subj', '/CN=flashpods-test-ca', '-days', '2', '-out', join(dir, 'ca.crt'));
  signCertificate(dir, 'apiserver', '/CN=kube-apiserver', `subjectAltName=IP:${nodeIp},IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\nextendedKeyUsage=serverAuth\n`);
  // 127.0.0.1 and the host name: what SPIRE's k8s attestor verifies when it dials the kubelet
  // without a node name.
  signCertificate(dir, 'kubelet', `/CN=${NODE_NAME}`, `subjectAltName=IP:${nodeIp},IP:127.0.0.1,DNS:${NODE_NAME},DNS:${hostname()}\nextendedKeyUsage=serverAuth\n`);
  signCertificate(dir, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n');
  // The ServiceAccount token signing key (ES256).
  ecKey(join(dir, 'sa.key'));
  openssl('ec', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub'));
}

/** Every directory of this cluster's cgroup tree, deepest first, in every v1 hierarchy (and the unified one). */
function cgroupDirs(cgroupRoot: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
    } catch {
      return;
    }
    for (const e of entries) walk(e);
    found.push(dir);
  };
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const top = join('/sys/fs/cgroup', h, cgroupRoot);
    if (existsSync(top)) walk(top);
  }
  return found;
}

function pidsIn(cgroupDir: string): number[] {
  try {
    return readFileSync(join(cgroupDir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Processes (other than this one) whose command line names `dir`. */
function processesNaming(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) pids.push(Number(p));
    } catch { /* gone */ }
  }
  return pids;
}

/** Mount points under any of `prefixes`, deepest first. */
function mountsUnder(prefixes: string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
    .filter((m) => prefixes.some((p) => m === p || m.startsWith(`${p}/`)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

const listDir = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

export async function startKubernetesCluster(options: KubernetesClusterOptions = {}): Promise<KubernetesCluster> {
  if (process.getuid?.() !== 0) throw new Error('the Kubernetes test cluster needs root (network namespace, containerd, kubelet)');
  const bins = Object.fromEntries(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet'].map((b) => [b, join(KUBERNETES_BIN_DIR, b)]));
  for (const bin of [...Object.values(bins), '/usr/bin/containerd', '/usr/bin/ctr', '/usr/lib/cni/bridge']) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: ${SETUP_HINT}`);
  }
  const t0 = Date.now();
  const tag = randomBytes(3).toString('hex');
  const netns = `fpk8s${process.pid}x${tag}`;
  const hostIf = `fpk8s${tag}`;
  const cgroupRoot = `/${netns}`;
  const octet = randomBytes(2);
  const hostIp = `100.72.${octet[0]}.${(octet[1]! % 64) * 4 + 1}`;
  const nodeIp = `100.72.${octet[0]}.${(octet[1]! % 64) * 4 + 2}`;
  const apiUrl = `https://${nodeIp}:6443`;
  const dir = mkdtempSync('/tmp/fp-k8s-');
  chmodSync(dir, 0o755);
  const pki = join(dir, 'pki');
  const caFile = join(pki, 'ca.crt');
  for (const d of ['pki', 'logs', 'etcd', 'kubelet', 'pod-logs', 'cni/net.d', 'cni/ipam', 'images', 'containerd']) mkdirSync(join(dir, d), { recursive: true });
  // containerd names its Pod network namespaces cni-<uuid> (Podman's are netns-<uuid>) and
  // caches CNI results as <network>-<container>-<ifname>: only new ones of those are ours.
  const netnsBefore = new Set(listDir('/run/netns'));
  const ourNetns = (name: string) => name === netns || (name.startsWith('cni-') && !netnsBefore.has(name));
  const cniCacheBefore = new Set(listDir('/var/lib/cni/results'));
  const ourCniCache = (name: string) => !cniCacheBefore.has(name) && (name.startsWith(`${CNI_NETWORK}-`) || name.startsWith('cni-loopback-'));
  const cd = join(dir, 'containerd');
  const containerdSock = join(cd, 'containerd.sock');
  const ctr = (...args: string[]) => runAsync('ctr', ['--address', containerdSock, '-n', 'k8s.io', ...args], 120_000);
  // Paths containerd 1.6 and the kubelet use whatever their configuration says: the shims'
  // sockets (/run/containerd/s) and the device plugin socket (/var/lib/kubelet/device-plugins).
  // Removed at the end when this cluster created them.
  const fixedPaths = ['/run/containerd', '/var/lib/kubelet'].filter((p) => !existsSync(p));
  const daemons: Daemon[] = [];
  const logPath = (name: string) => join(dir, 'logs', `${name}.log`);
  let stopped = false;

  const tokens = { admin: randomBytes(24).toString('hex'), node: randomBytes(24).toString('hex'), scheduler: randomBytes(24).toString('hex') };
  const adminKubeconfig = join(dir, 'admin.kubeconfig');
  const flashpodsKubeconfig = join(dir, 'flashpods.kubeconfig');

  const leftovers = (): string[] => {
    const found: string[] = [];
    for (const pid of processesNaming(dir)) found.push(`process ${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
    for (const cg of cgroupDirs(cgroupRoot)) found.push(`cgroup ${cg}`);
    for (const m of mountsUnder([dir])) found.push(`mount ${m}`);
    for (const m of mountsUnder(['/run/netns'])) if (ourNetns(m.slice('/run/netns/'.length))) found.push(`mount ${m}`);
    for (const n of listDir('/run/netns')) if (ourNetns(n)) found.push(`network namespace ${n}`);
    if (existsSync(`/sys/class/net/${hostIf}`)) found.push(`interface ${hostIf}`);
    for (const f of listDir('/var/lib/cni/results')) if (ourCniCache(f)) found.push(`CNI cache /var/lib/cni/results/${f}`);
    for (const p of fixedPaths) if (existsSync(p)) found.push(`directory ${p}`);
    if (existsSync(dir) && !process.env.FLASHPODS_KEEP_KUBERNETES) found.push(`directory ${dir}`);
    return found;
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<void> | void) => {
      try { await fn(); } catch (err) { problems.push(`${what}: ${(err as Error).message}`); }
    };
    const byName = (n: string) => daemons.find((d) => d.name === n);
    // 1. Pods go through the kubelet: containers stopped, sandboxes and their netns torn down.
    if (byName('kubelet') && !byName('kubelet')!.exited() && byName('kube-apiserver') && !byName('kube-apiserver')!.exited()) {
      await step('deleting pods', async () => {
        const core = adminClient().makeApiClient(CoreV1Api);
        const pods = (await core.listPodForAllNamespaces()).items;
        await Promise.all(pods.map((p) => core.deleteNamespacedPod({ name: p.metadata!.name!, namespace: p.metadata!.namespace!, gracePeriodSeconds: 1 }).catch(() => {})));
        await until('pods gone', async () => (await core.listPodForAllNamespaces()).items.length === 0, 60_000, () => undefined);
        // A Pod deleted without grace leaves the API at once; the kubelet stops its containers
        // and sandbox (network teardown, shim exit) after that.
        await until('containerd tasks gone', async () => (await ctr('tasks', 'ls', '-q')).trim() === '', 60_000, () => undefined);
      });
    }
    // 2. Node side, then control plane.
    for (const name of ['kubelet', 'containerd', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd']) {
      const d = byName(name);
      if (d) await step(`stopping ${name}`, () => d.stop());
    }
    // 3. Whatever outlived them: shims and container processes (in our cgroups or naming our dir).
    await step('killing leftover processes', async () => {
      for (let round = 0; round < 50; round++) {
        const pids = new Set([...cgroupDirs(cgroupRoot).flatMap(pidsIn), ...processesNaming(dir)]);
        if (pids.size === 0) return;
        for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('processes keep appearing in the cluster\'s cgroups');
    });
    await step('unmounting', () => {
      const netnsMounts = mountsUnder(['/run/netns']).filter((m) => m !== `/run/netns/${netns}` && ourNetns(m.slice('/run/netns/'.length)));
      for (const m of [...mountsUnder([dir]), ...netnsMounts]) run('umount', ['-l', m]);
      for (const m of netnsMounts) rmSync(m, { force: true });
    });
    await step('removing cgroups', () => {
      for (const cg of cgroupDirs(cgroupRoot)) rmdirSync(cg);
    });
    await step('removing the network namespace', () => {
      // The kernel frees a namespace's interfaces asynchronously: the host end goes explicitly.
      if (existsSync(`/sys/class/net/${hostIf}`)) run('ip', ['link', 'del', hostIf]);
      if (existsSync(`/run/netns/${netns}`)) run('ip', ['netns', 'del', netns]);
    });
    await step('removing CNI cache entries', () => {
      for (const f of listDir('/var/lib/cni/results')) if (ourCniCache(f)) rmSync(join('/var/lib/cni/results', f), { force: true });
    });
    await step('removing the fixed paths it created', () => {
      for (const p of fixedPaths) rmSync(p, { recursive: true, force: true });
    });
    if (!process.env.FLASHPODS_KEEP_KUBERNETES) await step('removing the directory', () => rmSync(dir, { recursive: true, force: true }));
    if (problems.length > 0) throw new Error(`Kubernetes teardown incomplete:\n${problems.join('\n')}`);
  };

  const adminClient = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(adminKubeconfig);
    return kc;
  };

  try {
    // --- network namespace, joined to the host by a veth pair ---
    run('ip', ['netns', 'add', netns]);
    run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    run('ip', ['link', 'set', hostIf, 'up']);
    run('ip', ['-n', netns, 'addr', 'add', `${nodeIp}/30`, 'dev', 'eth0']);
    run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    // The kubelet wants a default route to pick its node address; no traffic leaves through it.
    run('ip', ['-n', netns, 'route', 'add', 'default', 'via', hostIp]);

    // --- credentials ---
    makePki(pki, nodeIp);
    writeFileSync(join(pki, 'tokens.csv'), [
      `${tokens.admin},flashpods-test-admin,uid-admin,"system:masters"`,
      `${tokens.node},system:node:${NODE_NAME},uid-node,"system:nodes"`,
      `${tokens.scheduler},system:kube-scheduler,uid-scheduler`,
    ].join('\n') + '\n');
    writeFileSync(adminKubeconfig, kubeconfig(apiUrl, caFile, 'admin', tokens.admin));
    writeFileSync(join(dir, 'node.kubeconfig'), kubeconfig(apiUrl, caFile, 'node', tokens.node));
    writeFileSync(join(dir, 'scheduler.kubeconfig'), kubeconfig(apiUrl, caFile, 'scheduler', tokens.scheduler));

    // --- control plane ---
    const start = (name: string, bin: string, args: string[]): Daemon => {
      const d = daemon(name, netns, bin, args, logPath(name));
      daemons.push(d);
      return d;
    };
    start('etcd', bins.etcd!, ['--name=default', `--data-dir=${join(dir, 'etcd')}`,
      '--listen-client-urls=http://127.0.0.1:2379', '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380', '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=default=http://127.0.0.1:2380', '--unsafe-no-fsync', '--log-level=warn']);
    const apiserver = start('kube-apiserver', bins['kube-apiserver']!, [
      '--etcd-servers=http://127.0.0.1:2379', `--bind-address=${nodeIp}`, `--advertise-address=${nodeIp}`, '--secure-port=6443',
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`, `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${caFile}`, `--token-auth-file=${join(pki, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC', '--allow-privileged=false',
      `--service-account-key-file=${join(pki, 'sa.pub')}`, `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc', `--service-cluster-ip-range=${SERVICE_RANGE}`,
      `--kubelet-client-certificate=${join(pki, 'apiserver-kubelet-client.crt')}`, `--kubelet-client-key=${join(pki, 'apiserver-kubelet-client.key')}`,
      `--kubelet-certificate-authority=${caFile}`, '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false', '--v=1']);
    const ca = readFileSync(caFile, 'utf8');
    await until('kube-apiserver /readyz', async () => (await apiStatus(apiUrl, ca, tokens.admin, '/readyz')) === 200, 90_000, () => daemons.map((d) => d.exited()).find(Boolean));
    const apiserverReadyMs = Date.now() - t0;

    const admin = adminClient();
    // The kubelet checks the API server's requests (exec, attach, logs) with TokenReview and
    // SubjectAccessReview; the Node authorizer does not cover those.
    await admin.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({ body: {
      metadata: { name: 'flashpods-test:nodes-auth-delegator' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:nodes' }],
    } });
    const objects = KubernetesObjectApi.makeApiClient(admin);
    for (const doc of loadAllYaml(readFileSync(RBAC_MANIFEST, 'utf8')) as KubernetesObject[]) await objects.create(doc);

    start('kube-controller-manager', bins['kube-controller-manager']!, [
      `--kubeconfig=${adminKubeconfig}`, '--controllers=*,-nodeipam', '--use-service-account-credentials=false', '--leader-elect=false',
      `--node-monitor-grace-period=${NODE_MONITOR_GRACE_SECONDS}s`, '--node-monitor-period=2s',
      '--bind-address=127.0.0.1', `--root-ca-file=${caFile}`, `--service-account-private-key-file=${join(pki, 'sa.key')}`, '--v=1']);
    start('kube-scheduler', bins['kube-scheduler']!, [`--kubeconfig=${join(dir, 'scheduler.kubeconfig')}`, '--leader-elect=false', '--bind-address=127.0.0.1', '--v=1']);

    // --- containerd ---
    writeFileSync(join(dir, 'cni/net.d/10-flashpods.conflist'), JSON.stringify({
      cniVersion: '0.4.0',
      name: CNI_NETWORK,
      plugins: [{ type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', dataDir: join(dir, 'cni/ipam'), ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: '0.0.0.0/0' }] } }],
    }));
    writeFileSync(join(cd, 'config.toml'), `version = 2
root = "${cd}/root"
state = "${cd}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${containerdSock}"
[ttrpc]
  address = "${containerdSock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${cd}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # Without it runc's nsexec fails "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "${cd}/runc"
`);
    const containerd = start('containerd', '/usr/bin/containerd', ['--config', join(cd, 'config.toml')]);
    await until('containerd', async () => { await ctr('version'); return true; }, 30_000, containerd.exited);

    // --- images: rootful Podman → OCI archive → containerd ---
    const t1 = Date.now();
    const podmanEnv = { ...process.env, CONTAINERS_CONF };
    if (!(await runAsync('podman', ['image', 'inspect', '--format', '{{json .Config.Cmd}}', PAUSE_IMAGE], 30_000, podmanEnv).then((o) => o.trim() === JSON.stringify(PAUSE_CMD), () => false))) {
      writeFileSync(join(dir, 'images/Containerfile.pause'), `FROM ${TEST_IMAGE}\nCMD ${JSON.stringify(PAUSE_CMD)}\n`);
      await runAsync('podman', ['build', '-q', '--pull=never', '-t', PAUSE_IMAGE, '-f', join(dir, 'images/Containerfile.pause'), join(dir, 'images')], 120_000, podmanEnv);
    }
    for (const [i, image] of [PAUSE_IMAGE, ...(options.images ?? [TEST_IMAGE])].entries()) {
      const archive = join(dir, 'images', `${i}.tar`);
      await runAsync('podman', ['save', '--format', 'oci-archive', '-o', archive, image], 300_000, podmanEnv);
      await ctr('images', 'import', archive);
      rmSync(archive);
    }
    const imagesMs = Date.now() - t1;

    // --- kubelet ---
    mkdirSync(join(dir, 'kubelet'), { recursive: true });
    for (const h of readdirSync('/sys/fs/cgroup')) {
      // The kubelet refuses a cgroup root that does not exist (in every hierarchy it uses).
      if (statSync(join('/sys/fs/cgroup', h)).isDirectory() && h !== 'unified') mkdirSync(join('/sys/fs/cgroup', h, cgroupRoot), { recursive: true });
    }
    writeFileSync(join(dir, 'kubelet.yaml'), JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${containerdSock}`,
      // Every address of the cluster's namespace: the node address for the API server, and
      // 127.0.0.1 for a SPIRE agent in the namespace (its k8s attestor's default kubelet address).
      address: '0.0.0.0',
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      tlsCertFile: join(pki, 'kubelet.crt'),
      tlsPrivateKeyFile: join(pki, 'kubelet.key'),
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: caFile } },
      authorization: { mode: 'Webhook' },
      podLogsDir: join(dir, 'pod-logs'),
      // Images are imported, never pulled: nothing may garbage-collect them, nor may a busy
      // shared disk evict the test's Pods.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      registerNode: true,
      syncFrequency: '5s',
      nodeStatusUpdateFrequency: '2s',
    }));
    const core = admin.makeApiClient(CoreV1Api);
    const startKubelet = async (): Promise<void> => {
      start('kubelet', bins.kubelet!, [`--config=${join(dir, 'kubelet.yaml')}`, `--kubeconfig=${join(dir, 'node.kubeconfig')}`,
        `--root-dir=${join(dir, 'kubelet')}`, `--hostname-override=${NODE_NAME}`, `--node-ip=${nodeIp}`, '--v=1']);
      await until(`node ${NODE_NAME} Ready`, async () => {
        const node = await core.readNode({ name: NODE_NAME });
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      }, 120_000, () => daemons.map((d) => d.exited()).find(Boolean));
    };
    const killKubelet = async (): Promise<void> => {
      const kubelet = daemons.find((d) => d.name === 'kubelet');
      if (!kubelet) throw new Error('no kubelet is running');
      await kubelet.kill();
      daemons.splice(daemons.indexOf(kubelet), 1);
    };
    await startKubelet();
    const nodeReadyMs = Date.now() - t0;

    // --- the Flashpods identity: a token of the manifest's ServiceAccount ---
    await until('ServiceAccount default in the namespace (controller-manager)', async () => {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: FLASHPODS_NAMESPACE });
      return true;
    }, 60_000, () => daemons.map((d) => d.exited()).find(Boolean));
    const tr = await core.createNamespacedServiceAccountToken({ name: FLASHPODS_SERVICE_ACCOUNT, namespace: FLASHPODS_NAMESPACE,
      body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    writeFileSync(flashpodsKubeconfig, kubeconfig(apiUrl, caFile, FLASHPODS_SERVICE_ACCOUNT, tr.status!.token, FLASHPODS_NAMESPACE));

    return {
      dir, apiUrl, caFile, adminKubeconfig, flashpodsKubeconfig, namespace: FLASHPODS_NAMESPACE, nodeName: NODE_NAME, nodeIp, netns, cgroupRoot,
      timings: { apiserverReadyMs, nodeReadyMs, imagesMs, totalMs: Date.now() - t0 },
      clientCertificate: (cn) => signCertificate(pki, `client-${cn.replace(/[^a-z0-9-]/gi, '_')}`, `/CN=${cn}`, 'extendedKeyUsage=clientAuth\n'),
      logs: () => Object.fromEntries(daemons.map((d) => [d.name, existsSync(d.log) ? readFileSync(d.log, 'utf8') : ''])),
      killKubelet,
      startKubelet,
      stop,
      leftovers,
    };
  } catch (err) {
    const logs = daemons.map((d) => `--- ${d.name} ---\n${tail(d.log, 15)}`).join('\n');
    const teardown = await stop().then(() => '', (e: Error) => `\n${e.message}`);
    throw new Error(`the Kubernetes test cluster did not start (${SETUP_HINT}?): ${(err as Error).message}\n${logs}${teardown}`);
  }
}
