import { describe, it, expect } from 'vitest';
import { jobContainerOptions, jobContainerName, type JobContainerSpec } from '../../../actors/containers/container-spec.ts';

const base: JobContainerSpec = {
  jobId: 'job-1',
  jobType: 'worker',
  image: 'alpine:latest',
  command: 'echo hi',
  cpus: 2,
  memoryGb: 4,
  uploadDir: '/tmp/flashpods/uploads/upload_abc',
  artifactsDir: '/var/lib/flashpods/artifacts/job-1',
  socketMounts: [
    { host: '/run/spire/sockets/agent.sock', container: '/run/spire/sockets/agent.sock' },
    { host: '/tmp/test/token.sock', container: '/run/flashpods/token.sock' },
  ],
  rootless: true,
  networkMode: 'slirp4netns',
};

describe('jobContainerOptions', () => {
  it('builds a worker container per containers.md', () => {
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
      UsernsMode: 'keep-id',
      NetworkMode: 'slirp4netns',
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      Init: true,
      Binds: [
        '/tmp/flashpods/uploads/upload_abc:/work:ro',
        '/var/lib/flashpods/artifacts/job-1:/artifacts:rw',
        '/run/spire/sockets/agent.sock:/run/spire/sockets/agent.sock:ro',
        '/tmp/test/token.sock:/run/flashpods/token.sock:ro',
      ],
    });
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
    expect(o.HostConfig?.Binds?.[0]).toBe('/tmp/flashpods/uploads/upload_abc:/work:rw');
  });

  it('omits /work without an upload, keep-id when rootful, and adds extra env', () => {
    const o = jobContainerOptions({
      ...base,
      uploadDir: undefined,
      socketMounts: [],
      rootless: false,
      networkMode: 'none',
      extraEnv: { FLASHPODS_NEED_GITHUB_TOKEN: 'true' },
    });
    expect(o.HostConfig?.Binds).toEqual(['/var/lib/flashpods/artifacts/job-1:/artifacts:rw']);
    expect(o.HostConfig).not.toHaveProperty('UsernsMode');
    expect(o.HostConfig?.NetworkMode).toBe('none');
    expect(o.Env).toEqual(['FLASHPODS_NEED_GITHUB_TOKEN=true']);
  });

  it('rejects a worker without a command', () => {
    expect(() => jobContainerOptions({ ...base, command: undefined })).toThrow(/no command/);
  });

  it('names containers job_<job_id> without doubling the prefix job ids carry', () => {
    expect(jobContainerName('abc')).toBe('job_abc');
    expect(jobContainerName('job_abc')).toBe('job_abc');
  });
});
