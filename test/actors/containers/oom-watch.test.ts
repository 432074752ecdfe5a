/**
 * The parts of OOM detection that are pure path and file logic (actors/containers/oom-watch.ts):
 * which cgroup outlives a container, and reading cgroup v2's OOM-kill counter. The detection
 * end to end runs on real cgroups: podman-client.test.ts (v1, rootful) and test/vm (v2, rootless).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { oomKillCount, outlivingAncestor } from '../../../actors/containers/oom-watch.ts';

const ID = 'ebfc1e533e356b9da44ecbf7d8adb45542c87e64304a325ac58de25e2abec67b';
const dir = mkdtempSync(join(tmpdir(), 'fp-oom-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('outlivingAncestor', () => {
  it("skips every directory of the container's own: rootless Podman with the systemd cgroup manager", () => {
    const user = '/sys/fs/cgroup/user.slice/user-1500.slice/user@1500.service/user.slice';
    expect(outlivingAncestor(`${user}/libpod-${ID}.scope/container`, ID)).toBe(user);
    expect(outlivingAncestor(`${user}/libpod-${ID}.scope`, ID)).toBe(user);
  });

  it('rootful Podman with cgroupfs: the libpod_parent directory', () => {
    expect(outlivingAncestor(`/sys/fs/cgroup/libpod_parent/libpod-${ID}`, ID)).toBe('/sys/fs/cgroup/libpod_parent');
  });

  it('none when only the cgroup root is above (it has no memory.events)', () => {
    expect(outlivingAncestor(`/sys/fs/cgroup/libpod-${ID}.scope`, ID)).toBeUndefined();
  });
});

describe('oomKillCount', () => {
  it("reads memory.events' oom_kill line, and nothing when the file is gone", () => {
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 17\noom 2\noom_kill 2\noom_group_kill 0\n');
    expect(oomKillCount(dir)).toBe(2);
    expect(oomKillCount(join(dir, 'gone'))).toBeUndefined();
  });
});
