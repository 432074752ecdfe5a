import { describe, it, expect } from 'vitest';
import { identityMounts, jobContainerOptions, jobContainerName, type JobContainerSpec } from '../../../actors/containers/container-spec.ts';

const base: JobContainerSpec = {
  jobId: 'job-1',
  jobType: 'worker',
  image: 'alpine:latest',
  command: 'echo hi',
  cpus: 2,
  memoryGb: 4,
  pidsLimit: 1024,
  uploadDir: '/tmp/flashpods/uploads/upload_abc',
  artifactsDir: '/var/lib/flashpods/artifacts/job-1',
  identitySockets: { spire: '/run/spire/sockets/agent.sock', token: '/run/flashpods-tokens/token.sock' },
  rootless: true,
  networkMode: 'slirp4netns',
};

describe('jobContainerOptions', () => {
  it('builds a worker container per containers.md (no need_github_token: no identity socket)', () => {
    const o = jobContainerOptions(base);
    expect(o.name).toBe('job_job-1');
    expect(o.Image).toBe('alpine:latest');
    expect(o.Cmd).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(o.Env).toEqual([]);
    expect(o.Labels).toEqual({ 'flashpods-job': 'true', 'flashpods-job-id': 'job-1', 'flashpods-job-type': 'worker' });
    expect(o.HostConfig).toEqual({
      NanoCpus: 2_000_000_000,
      Memory: 4 * 1024 ** 3,
      MemorySwap: 4 * 1024 ** 3,
      PidsLimit: 1024,
      UsernsMode: 'keep-id',
      NetworkMode: 'slirp4netns',
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      Init: true,
      Binds: [
        '/tmp/flashpods/uploads/upload_abc:/work:ro',
        '/var/lib/flashpods/artifacts/job-1:/artifacts:rw',
      ],
    });
  });

  it('gives a worker with need_github_token both identity sockets (read-only) and the flag its entrypoint reads', () => {
    const o = jobContainerOptions({ ...base, needGithubToken: true });
    expect(o.HostConfig?.Binds).toEqual([
      '/tmp/flashpods/uploads/upload_abc:/work:ro',
      '/var/lib/flashpods/artifacts/job-1:/artifacts:rw',
      '/run/spire/sockets/agent.sock:/run/spire/sockets/agent.sock:ro',
      '/run/flashpods-tokens/token.sock:/run/flashpods/token.sock:ro',
    ]);
    expect(o.Env).toEqual(['FLASHPODS_NEED_GITHUB_TOKEN=true']);
  });

  it('mounts only the identity sockets present in the spec', () => {
    expect(identityMounts({ jobType: 'agent', identitySockets: { token: '/t.sock' } })).toEqual([['/t.sock', '/run/flashpods/token.sock']]);
    expect(identityMounts({ jobType: 'worker', needGithubToken: true, identitySockets: { spire: '/s.sock' } })).toEqual([['/s.sock', '/run/spire/sockets/agent.sock']]);
    expect(identityMounts({ jobType: 'worker', needGithubToken: true })).toEqual([]);
    expect(identityMounts({ jobType: 'worker', needGithubToken: false, identitySockets: { spire: '/s.sock', token: '/t.sock' } })).toEqual([]);
  });

  it('builds an agent container with its environment and a writable /work', () => {
    const o = jobContainerOptions({
      ...base,
      jobType: 'agent',
      image: 'flashpods/agent:latest',
      command: undefined,
      task: 'fix the bug',
      context: 'see issue 4',
      gitBranch: 'flashpods/job-1',
    });
    expect(o.Cmd).toEqual(['/entrypoint.sh']);
    expect(o.Env).toEqual([
      'FLASHPODS_TASK=fix the bug',
      'FLASHPODS_CONTEXT=see issue 4',
      'FLASHPODS_GIT_BRANCH=flashpods/job-1',
      'FLASHPODS_JOB_ID=job-1',
    ]);
    expect(o.Labels?.['flashpods-job-type']).toBe('agent');
    expect(o.HostConfig?.Binds).toEqual([
      '/tmp/flashpods/uploads/upload_abc:/work:rw',
      '/var/lib/flashpods/artifacts/job-1:/artifacts:rw',
      '/run/spire/sockets/agent.sock:/run/spire/sockets/agent.sock:ro',
      '/run/flashpods-tokens/token.sock:/run/flashpods/token.sock:ro',
    ]);
  });

  it('gives an agent its identity sockets whatever need_github_token says, and never the worker flag', () => {
    const agent = { ...base, jobType: 'agent' as const, command: undefined, needGithubToken: false };
    expect(jobContainerOptions(agent).HostConfig?.Binds).toHaveLength(4);
    expect(jobContainerOptions({ ...agent, needGithubToken: true }).Env).not.toContain('FLASHPODS_NEED_GITHUB_TOKEN=true');
  });

  it('omits /work without an upload, and keep-id when rootful', () => {
    const o = jobContainerOptions({
      ...base,
      uploadDir: undefined,
      identitySockets: undefined,
      needGithubToken: true,
      rootless: false,
      networkMode: 'none',
    });
    expect(o.HostConfig?.Binds).toEqual(['/var/lib/flashpods/artifacts/job-1:/artifacts:rw']);
    expect(o.HostConfig).not.toHaveProperty('UsernsMode');
    expect(o.HostConfig?.NetworkMode).toBe('none');
  });

  it('passes the configured pids limit through', () => {
    expect(jobContainerOptions({ ...base, pidsLimit: 64 }).HostConfig?.PidsLimit).toBe(64);
  });

  it('rejects a worker without a command', () => {
    expect(() => jobContainerOptions({ ...base, command: undefined })).toThrow(/no command/);
  });

  it('names containers job_<job_id> without doubling the prefix job ids carry', () => {
    expect(jobContainerName('abc')).toBe('job_abc');
    expect(jobContainerName('job_abc')).toBe('job_abc');
  });
});
