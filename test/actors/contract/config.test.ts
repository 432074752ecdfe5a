import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../actors/contract/config.ts';

describe('config', () => {
  it('keeps everything under ./.flashpods in the dev profile', () => {
    const config = loadConfig({ env: {}, cwd: '/srv/checkout' });
    expect(config.profile).toBe('dev');
    expect(config.paths.db).toBe('/srv/checkout/.flashpods/db/flashpods.db');
    expect(config.paths.apiTokenFile).toBe('/srv/checkout/.flashpods/api-token');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.timing.killGraceMs).toBe(10_000);
  });

  it('uses the host paths of the contract in production', () => {
    const config = loadConfig({ env: { FLASHPODS_PROFILE: 'production' } });
    expect(config.paths).toMatchObject({
      db: '/var/lib/flashpods/db/flashpods.db', uploads: '/tmp/flashpods/uploads', artifacts: '/var/lib/flashpods/artifacts',
      logs: '/var/log/flashpods', apiTokenFile: '/etc/flashpods/api-token', podmanSocket: '/run/flashpods/podman.sock',
      secretsFile: '/etc/flashpods/secrets.json', tokenSocket: '/run/flashpods-tokens/token.sock', spireSocket: '/run/spire/sockets/agent.sock',
    });
    expect(config.listen).toEqual({ host: '10.0.0.1', port: 8080 });
  });

  it('layers the config file under the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fp-cfg-'));
    const file = join(dir, 'flashpods.json');
    writeFileSync(file, JSON.stringify({ listen: '0.0.0.0:9000', rateLimit: { burst: 20 }, timing: { killGraceMs: 2 } }));
    const config = loadConfig({ env: { FLASHPODS_CONFIG: file, FLASHPODS_RATE_LIMIT_BURST: '30' } });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(config.rateLimit.burst).toBe(30);
    expect(config.timing.killGraceMs).toBe(2_000);
  });

  it('reads the executor and the cluster settings; a bad node selector and executor are reported', () => {
    const config = loadConfig({ env: { FLASHPODS_EXECUTOR: 'kubernetes', FLASHPODS_KUBERNETES_NODE_SELECTOR: 'pool=jobs, example.com/zone=a', FLASHPODS_KUBERNETES_PENDING_TIMEOUT_SECONDS: '45' }, cwd: '/srv/checkout' });
    expect(config.executor).toBe('kubernetes');
    expect(config.kubernetes).toEqual({
      kubeconfig: '/srv/checkout/.flashpods/kubeconfig', apiUrl: '', namespace: 'flashpods', nodeSelector: { pool: 'jobs', 'example.com/zone': 'a' },
      helperImage: 'busybox:1.36', imagePullPolicy: 'IfNotPresent', runAsUser: 1000, pendingTimeoutMs: 45_000, nodeLostMs: 60_000,
    });
    expect(loadConfig({ env: {} }).executor).toBe('podman');
    expect(() => loadConfig({ env: { FLASHPODS_EXECUTOR: 'nomad', FLASHPODS_KUBERNETES_NODE_SELECTOR: 'pool', FLASHPODS_KUBERNETES_RUN_AS_USER: '0' } })).toThrow(ConfigError);
    try {
      loadConfig({ env: { FLASHPODS_EXECUTOR: 'nomad', FLASHPODS_KUBERNETES_NODE_SELECTOR: 'pool', FLASHPODS_KUBERNETES_RUN_AS_USER: '0' } });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'FLASHPODS_EXECUTOR="nomad": must be one of podman, kubernetes',
        'FLASHPODS_KUBERNETES_NODE_SELECTOR="pool": must be label pairs key=value separated by commas (e.g. pool=jobs,zone=a), or empty',
        'FLASHPODS_KUBERNETES_RUN_AS_USER="0": must be a whole number from 1 to 2147483647',
      ]);
    }
  });

  it('reports every bad value at once, each naming where it came from', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ env: { FLASHPODS_LISTEN: 'nowhere', FLASHPODS_CAPACITY_CPUS: '1.5', FLASHPODS_LOG_FORMAT: 'xml', FLASHPODS_PODMAN_ROOTLESS: 'maybe' } });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems).toHaveLength(4);
    expect(error!.message).toContain('FLASHPODS_LISTEN="nowhere": must be host:port');
    expect(error!.message).toContain('FLASHPODS_CAPACITY_CPUS="1.5": must be a whole number');
    expect(error!.message).toContain('FLASHPODS_LOG_FORMAT="xml": must be one of json, pretty');
    expect(error!.message).toContain('FLASHPODS_PODMAN_ROOTLESS="maybe": must be true or false');
  });

  it('bounds each job: 1024 pids, disk at 5× the artifact limit checked every 10 s, all configurable', () => {
    for (const profile of ['dev', 'production']) {
      const config = loadConfig({ env: { FLASHPODS_PROFILE: profile } });
      expect([config.limits.pidsMax, config.limits.jobDiskMultiple, config.timing.diskCheckIntervalMs]).toEqual([1024, 5, 10_000]);
    }
    const tuned = loadConfig({ env: { FLASHPODS_PIDS_MAX: '4096', FLASHPODS_JOB_DISK_MULTIPLE: '3', FLASHPODS_DISK_CHECK_INTERVAL_SECONDS: '0.5' } });
    expect([tuned.limits.pidsMax, tuned.limits.jobDiskMultiple, tuned.timing.diskCheckIntervalMs]).toEqual([4096, 3, 500]);
    let error: ConfigError | undefined;
    try {
      loadConfig({ env: { FLASHPODS_PIDS_MAX: '8', FLASHPODS_JOB_DISK_MULTIPLE: '0', FLASHPODS_DISK_CHECK_INTERVAL_SECONDS: '0' } });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error!.problems).toEqual([
      'FLASHPODS_PIDS_MAX="8": must be a whole number from 16 to 4194304',
      'FLASHPODS_JOB_DISK_MULTIPLE="0": must be a whole number from 1 to 1000',
      'FLASHPODS_DISK_CHECK_INTERVAL_SECONDS="0": must be a number of seconds ≥ 0.1',
    ]);
  });

  it('names an unreadable config file', () => {
    expect(() => loadConfig({ env: { FLASHPODS_CONFIG: '/nonexistent/flashpods.json' } })).toThrow(/FLASHPODS_CONFIG=\/nonexistent\/flashpods.json: cannot read it as JSON/);
  });
});
