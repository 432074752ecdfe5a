/**
 * @module cli/validate/host
 * What `flashpods validate` reads off the host itself, without talking to anything: TCP
 * listeners of this network namespace (/proc/net/tcp{,6}), which process holds a socket, users
 * and groups by name, and where a running daemon's binary is.
 */
import { accessSync, constants, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Listener {
  address: string;
  port: number;
  inode: number;
}

/** An IPv4 address from /proc/net/tcp's little-endian hex. */
function ipv4(hex: string): string {
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

/** An IPv6 address from /proc/net/tcp6 (four little-endian 32-bit words); v4-mapped ones as IPv4. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 6; i >= 0; i -= 2) bytes.push(parseInt(word.slice(i, i + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  if (bytes.every((b) => b === 0)) return '::';
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/** TCP sockets in LISTEN state in this process's network namespace. */
export function tcpListeners(): Listener[] {
  const out: Listener[] = [];
  for (const [file, decode] of [['/proc/net/tcp', ipv4], ['/proc/net/tcp6', ipv6]] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addr, port] = f[1]!.split(':');
      out.push({ address: decode(addr!), port: parseInt(port!, 16), inode: Number(f[9]) });
    }
  }
  return out;
}

/** The listener that accepts connections to host:port (bound to it, or to a wildcard). */
export function listenerFor(host: string, port: number): Listener | undefined {
  const all = tcpListeners().filter((l) => l.port === port);
  return all.find((l) => l.address === host) ?? all.find((l) => l.address === '0.0.0.0' || l.address === '::');
}

export interface ProcessInfo {
  pid: number;
  comm: string;
  argv: string[];
  exe: string | undefined;
}

function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    let exe: string | undefined;
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch { /* not ours to read */ }
    return { pid, comm, argv, exe };
  } catch {
    return undefined;
  }
}

const pids = (): number[] => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);

/** The process holding socket `inode` (needs root for other users' processes). */
export function socketOwner(inode: number): ProcessInfo | undefined {
  const target = `socket:[${inode}]`;
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return processInfo(pid);
      } catch { /* closed meanwhile */ }
    }
  }
  return undefined;
}

/** Running processes whose name (comm) is `name`. */
export function processesNamed(name: string): ProcessInfo[] {
  return pids().map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name ? processInfo(pid) : undefined;
    } catch {
      return undefined;
    }
  }).filter((p): p is ProcessInfo => p !== undefined);
}

/** An executable named `name` on PATH. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  return undefined;
}

function idsFrom(file: string): Map<string, number> {
  const map = new Map<string, number>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) map.set(name, Number(id));
    }
  } catch { /* none */ }
  return map;
}

export interface Accounts {
  uid(name: string): number | undefined;
  gid(name: string): number | undefined;
  userName(uid: number): string;
  groupName(gid: number): string;
}

export function accounts(): Accounts {
  const users = idsFrom('/etc/passwd');
  const groups = idsFrom('/etc/group');
  const nameOf = (map: Map<string, number>, id: number) => [...map].find(([, v]) => v === id)?.[0] ?? String(id);
  return {
    uid: (name) => (/^\d+$/.test(name) ? Number(name) : users.get(name)),
    gid: (name) => (/^\d+$/.test(name) ? Number(name) : groups.get(name)),
    userName: (uid) => nameOf(users, uid),
    groupName: (gid) => nameOf(groups, gid),
  };
}
