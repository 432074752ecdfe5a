/**
 * @module actors/containers/oom-watch
 * Out-of-memory evidence from a running container's memory cgroup. Needed because Podman 4.3 on
 * cgroup v1 hosts leaves State.OOMKilled false for a container the kernel OOM-killed (see
 * notes/podman-here.md), and on cgroup v2 too (Podman 4.3 with crun, rootful and rootless:
 * notes/vm-host.md). The cgroup disappears a few hundred ms after the container dies, so it is
 * sampled while the container runs rather than read after exit. On cgroup v2 that sampling alone
 * misses kills (rootless, in the VM of test/vm: the cgroup went within 0.5 s of the kill, faster
 * than a busy event loop samples), so the OOM-kill counter of an ancestor that outlives the
 * container is read before and after as well: v2's memory.events counts the whole subtree.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface MemoryCgroup {
  dir: string;
  version: 1 | 2;
}

export interface OomWatch {
  /** Stops sampling (one last read if the cgroup is still there) and tells whether OOM was seen. */
  stop(): boolean;
}

const CGROUP_ROOT = '/sys/fs/cgroup';
const V1_MEMORY_ROOT = join(CGROUP_ROOT, 'memory');
// Kernels round limits to pages; this absorbs any page size.
const LIMIT_TOLERANCE_BYTES = 64 * 1024;

/**
 * The memory cgroup of `pid` that enforces `limitBytes` (the process's own cgroup or the nearest
 * ancestor with that limit). None when no cgroup carries the limit, e.g. rootless on cgroup v1
 * where limits are ignored: there, nothing the cgroup says is about this container.
 */
export function findMemoryCgroup(pid: number, limitBytes: number): MemoryCgroup | undefined {
  let entries: string[];
  try {
    entries = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const v1 = entries.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'));
  const v2 = entries.find((l) => l.startsWith('0::'));
  const candidate: MemoryCgroup & { root: string; limitFile: string } | undefined =
    v1?.[2] !== undefined && existsSync(V1_MEMORY_ROOT)
      ? { version: 1, root: V1_MEMORY_ROOT, dir: join(V1_MEMORY_ROOT, v1[2]), limitFile: 'memory.limit_in_bytes' }
      : v2 !== undefined && existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))
        ? { version: 2, root: CGROUP_ROOT, dir: join(CGROUP_ROOT, v2.slice(3)), limitFile: 'memory.max' }
        : undefined;
  if (!candidate) return undefined;
  for (let dir = candidate.dir; dir.startsWith(candidate.root + '/'); dir = dirname(dir)) {
    const limit = Number(readOr(join(dir, candidate.limitFile), ''));
    if (Number.isFinite(limit) && Math.abs(limit - limitBytes) < LIMIT_TOLERANCE_BYTES) {
      return { dir, version: candidate.version };
    }
  }
  return undefined;
}

/**
 * Whether the cgroup records an OOM kill: the `oom_kill` counter of memory.oom_control (v1) or
 * memory.events (v2); on v1 kernels without that counter, peak usage having reached the limit.
 */
export function readOomEvidence(cgroup: MemoryCgroup): boolean {
  const file = cgroup.version === 1 ? 'memory.oom_control' : 'memory.events';
  const counters = readOr(join(cgroup.dir, file), '');
  const kills = counters.match(/^oom_kill (\d+)$/m);
  if (kills) return Number(kills[1]) > 0;
  if (cgroup.version === 2) return false;
  const peak = Number(readOr(join(cgroup.dir, 'memory.max_usage_in_bytes'), '0'));
  const limit = Number(readOr(join(cgroup.dir, 'memory.limit_in_bytes'), 'Infinity'));
  return peak >= limit;
}

/**
 * The nearest ancestor of a container's cgroup directory that is not the container's own (no
 * path component above it carries the container id), below the cgroup root: it outlives the
 * container. E.g. `…/user@1500.service/user.slice` for rootless Podman's
 * `…/user.slice/libpod-<id>.scope/container`.
 */
export function outlivingAncestor(dir: string, containerId: string, root = CGROUP_ROOT): string | undefined {
  for (let up = dirname(dir); up.startsWith(root + '/'); up = dirname(up)) {
    if (!up.includes(containerId)) return up;
  }
  return undefined;
}

/** The `oom_kill` counter of a cgroup v2 directory's memory.events (hierarchical); undefined when unreadable. */
export function oomKillCount(dir: string): number | undefined {
  const kills = readOr(join(dir, 'memory.events'), '').match(/^oom_kill (\d+)$/m);
  return kills ? Number(kills[1]) : undefined;
}

/**
 * Samples the container's memory cgroup every `intervalMs` until OOM is seen or stop() is called;
 * on cgroup v2, given the container id, also compares an outliving ancestor's OOM-kill counter
 * at stop() with its value now. (A sibling's OOM kill meanwhile also raises that counter: harmless
 * for isOomKill, which also wants exit 137 without a kill of ours.)
 */
export function watchOomEvidence(pid: number, limitBytes: number, intervalMs = 100, containerId?: string): OomWatch {
  const cgroup = findMemoryCgroup(pid, limitBytes);
  const ancestor = cgroup?.version === 2 && containerId ? outlivingAncestor(cgroup.dir, containerId) : undefined;
  const killsBefore = ancestor ? oomKillCount(ancestor) : undefined;
  let seen = false;
  const sample = (): void => {
    if (!cgroup || seen) return;
    if (!existsSync(cgroup.dir)) return clearInterval(timer);
    seen = readOomEvidence(cgroup);
    if (seen) clearInterval(timer);
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  sample();
  return {
    stop() {
      sample();
      clearInterval(timer);
      const killsAfter = ancestor ? oomKillCount(ancestor) : undefined;
      return seen || (killsBefore !== undefined && killsAfter !== undefined && killsAfter > killsBefore);
    },
  };
}

/**
 * The job's `oom_killed`: what the container state says, or else cgroup evidence of an OOM kill
 * together with a SIGKILL exit that we did not cause ourselves (cancel/timeout).
 */
export function isOomKill(facts: { stateOomKilled: boolean; evidence: boolean; exitCode: number; killSent: boolean }): boolean {
  return facts.stateOomKilled || (facts.evidence && facts.exitCode === 137 && !facts.killSent);
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}
