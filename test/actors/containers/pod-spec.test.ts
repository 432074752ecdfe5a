import { describe, it, expect } from 'vitest';
import type { V1PodStatus } from '@kubernetes/client-node';
import {
  BACKSTOP_MARGIN_SECONDS, jobPod, jobPodName, jobPodSelector, killJobCommand, nodeSilence, podJobState, storageEviction, uploadEndMarker, type JobPodSpec,
} from '../../../actors/containers/pod-spec.ts';

const settings = { namespace: 'flashpods', nodeSelector: {}, runAsUser: 1000, helperImage: 'localhost/busybox:test', imagePullPolicy: 'Never' as const };
const base: JobPodSpec = {
  jobId: 'job_abc123',
  jobType: 'worker',
  image: 'alpine:latest',
  command: 'echo hi',
  cpus: 2,
  memoryGb: 4,
  timeoutSeconds: 1800,
  killGraceSeconds: 10,
  upload: { nonce: 'n0nce0123456789a', sizeLimitBytes: 2 * 1024 ** 3 },
  artifactsSizeLimitBytes: 10 * 1024 ** 3,
  settings,
};
const HARDENED = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
const HELPER = { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '64Mi' } };

describe('jobPod', () => {
  it('builds a worker Pod: labels, guaranteed resources, hardening, upload receiver, holder', () => {
    const pod = jobPod({ ...base, instanceId: 'inst1' });
    expect(pod.metadata).toEqual({
      name: 'job-abc123',
      namespace: 'flashpods',
      labels: { 'flashpods-job': 'true', 'flashpods-job-id': 'job_abc123', 'flashpods-job-type': 'worker', 'flashpods-instance': 'inst1' },
    });
    const spec = pod.spec!;
    expect(spec.restartPolicy).toBe('Never');
    expect(spec.activeDeadlineSeconds).toBe(1800 + BACKSTOP_MARGIN_SECONDS);
    expect(spec.terminationGracePeriodSeconds).toBe(10);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.enableServiceLinks).toBe(false);
    expect(spec.shareProcessNamespace).toBe(true);
    expect(spec.nodeSelector).toBeUndefined();
    expect(spec.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec.containers).toEqual([
      {
        name: 'job',
        image: 'alpine:latest',
        imagePullPolicy: 'Never',
        args: ['/bin/sh', '-c', 'echo hi'],
        env: [],
        // Ephemeral storage: the disk budget (the artifacts' sizeLimit) plus the upload's room.
        resources: {
          requests: { cpu: '2000m', memory: String(4 * 1024 ** 3), 'ephemeral-storage': String(12 * 1024 ** 3) },
          limits: { cpu: '2000m', memory: String(4 * 1024 ** 3), 'ephemeral-storage': String(12 * 1024 ** 3) },
        },
        securityContext: HARDENED,
        volumeMounts: [{ name: 'work', mountPath: '/work', readOnly: true }, { name: 'artifacts', mountPath: '/artifacts' }],
      },
      {
        name: 'artifacts',
        image: 'localhost/busybox:test',
        imagePullPolicy: 'Never',
        command: ['/bin/sh', '-c', 'exec sleep 2147483647'],
        resources: HELPER,
        securityContext: HARDENED,
        volumeMounts: [{ name: 'artifacts', mountPath: '/artifacts' }],
      },
    ]);
    const [upload, ...more] = spec.initContainers!;
    expect(more).toEqual([]);
    expect(upload).toMatchObject({
      name: 'upload', image: 'localhost/busybox:test', stdin: true, stdinOnce: true, terminationMessagePolicy: 'FallbackToLogsOnError',
      resources: HELPER, securityContext: HARDENED, volumeMounts: [{ name: 'work', mountPath: '/work' }],
    });
    expect(upload!.command![2]).toContain('[ -f /work/.flashpods-upload-end-n0nce0123456789a ]');
    expect(spec.volumes).toEqual([
      { name: 'work', emptyDir: { sizeLimit: String(2 * 1024 ** 3) } },
      { name: 'artifacts', emptyDir: { sizeLimit: String(10 * 1024 ** 3) } },
    ]);
  });

  it('gives an agent a writable /work and its environment, and fractional figures exact units', () => {
    const pod = jobPod({ ...base, jobType: 'agent', image: 'flashpods/agent:latest', command: undefined, task: 'fix it', context: 'ctx', gitBranch: 'b', cpus: 0.5, memoryGb: 0.25 });
    const job = pod.spec!.containers[0]!;
    expect(job.args).toEqual(['/entrypoint.sh']);
    expect(job.env).toEqual([
      { name: 'FLASHPODS_TASK', value: 'fix it' },
      { name: 'FLASHPODS_CONTEXT', value: 'ctx' },
      { name: 'FLASHPODS_GIT_BRANCH', value: 'b' },
      { name: 'FLASHPODS_JOB_ID', value: 'job_abc123' },
    ]);
    expect(job.volumeMounts![0]).toEqual({ name: 'work', mountPath: '/work', readOnly: false });
    const storage = String(12 * 1024 ** 3);
    expect(job.resources).toEqual({ requests: { cpu: '500m', memory: '268435456', 'ephemeral-storage': storage }, limits: { cpu: '500m', memory: '268435456', 'ephemeral-storage': storage } });
  });

  it('has no /work, no receiver and no work volume without an upload', () => {
    const pod = jobPod({ ...base, upload: undefined });
    expect(pod.spec!.initContainers).toBeUndefined();
    expect(pod.spec!.containers[0]!.volumeMounts).toEqual([{ name: 'artifacts', mountPath: '/artifacts' }]);
    expect(pod.spec!.volumes).toEqual([{ name: 'artifacts', emptyDir: { sizeLimit: String(10 * 1024 ** 3) } }]);
    expect(pod.spec!.containers[0]!.resources!.limits!['ephemeral-storage']).toBe(String(10 * 1024 ** 3));
  });

  it('passes the worker flag for need_github_token and the node selector from the settings', () => {
    const pod = jobPod({ ...base, needGithubToken: true, settings: { ...settings, nodeSelector: { 'flashpods.dev/jobs': 'true' } } });
    expect(pod.spec!.containers[0]!.env).toEqual([{ name: 'FLASHPODS_NEED_GITHUB_TOKEN', value: 'true' }]);
    expect(pod.spec!.nodeSelector).toEqual({ 'flashpods.dev/jobs': 'true' });
  });

  it('refuses root, a bad nonce and ids that make no Pod name', () => {
    expect(() => jobPod({ ...base, settings: { ...settings, runAsUser: 0 } })).toThrow('runAsUser must be a uid above 0 (got 0)');
    expect(() => jobPod({ ...base, upload: { nonce: 'short', sizeLimitBytes: 1 } })).toThrow('the upload nonce must be 16 to 64 characters of [a-z0-9]');
    expect(() => jobPodName('job_ABC')).toThrow('job id job_ABC gives no valid Pod name (job-ABC)');
    expect(jobPodName('job_x_y')).toBe('job-x-y');
    expect(uploadEndMarker('0123456789abcdef')).toBe('.flashpods-upload-end-0123456789abcdef');
  });

  it('selects its own instance, or every Flashpods Pod', () => {
    expect(jobPodSelector('inst1')).toBe('flashpods-job=true,flashpods-instance=inst1');
    expect(jobPodSelector()).toBe('flashpods-job=true');
  });

  it('kills with TERM to every process, the main one held until the others are gone, and with KILL until none is left (e2e: executors.test.ts)', () => {
    const term = killJobCommand('TERM')[2]!;
    const kill = killJobCommand('KILL')[2]!;
    expect(term).toContain('kill -STOP "$main"');
    expect(term).toContain('kill -TERM "$p" 2>/dev/null && kill -CONT "$p"');
    expect(term).toMatch(/while others_alive; do sleep 0\.1 \|\| break; done\nkill -TERM "\$main"\nkill -CONT "\$main"\n\) <\/dev\/null >\/dev\/null 2>&1 &/);
    expect(kill).toContain('kill -KILL "$p"');
    expect(kill).toContain('$(seq 1 50)');
  });
});

describe('podJobState', () => {
  const at = '2026-11-29T10:00:00Z';
  it('reads every stage from the status', () => {
    expect(podJobState(undefined)).toEqual({ phase: 'pending' });
    expect(podJobState({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes' }] }))
      .toEqual({ phase: 'pending', reason: 'Unschedulable', message: '0/1 nodes' });
    expect(podJobState({ phase: 'Pending', initContainerStatuses: [{ name: 'upload', state: { running: {} } } as never] })).toEqual({ phase: 'uploading' });
    expect(podJobState({ phase: 'Pending', containerStatuses: [{ name: 'job', state: { waiting: { reason: 'ErrImageNeverPull', message: 'no image' } } } as never] }))
      .toEqual({ phase: 'pending', reason: 'ErrImageNeverPull', message: 'no image' });
    expect(podJobState({ phase: 'Running', containerStatuses: [{ name: 'job', state: { running: { startedAt: new Date(at) } } } as never] }))
      .toEqual({ phase: 'running', startedAt: new Date(at) });
    expect(podJobState({ phase: 'Running', containerStatuses: [{ name: 'job', state: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: new Date(at) } } } as never] }))
      .toEqual({ phase: 'exited', exitCode: 137, oomKilled: true, finishedAt: new Date(at) });
    expect(podJobState({ phase: 'Running', containerStatuses: [{ name: 'job', state: { terminated: { exitCode: 3, reason: 'Error' } } } as never] }))
      .toEqual({ phase: 'exited', exitCode: 3, oomKilled: false });
  });

  it('tells a failed upload from a Pod that went away', () => {
    const failedUpload: V1PodStatus = { phase: 'Failed', initContainerStatuses: [{ name: 'upload', state: { terminated: { exitCode: 1, message: 'upload: the stream ended before its end marker: the upload was cut off\n' } } } as never] };
    expect(podJobState(failedUpload)).toEqual({ phase: 'upload-failed', message: 'upload: the stream ended before its end marker: the upload was cut off' });
    expect(podJobState({ phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' }))
      .toEqual({ phase: 'gone', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' });
  });
});

describe('evictions', () => {
  it('podJobState carries the kubelet\'s eviction message; storageEviction tells the disk budget\'s from the node\'s pressure', () => {
    const killed = [{ name: 'job', state: { terminated: { exitCode: 137, reason: 'Error' } } } as never];
    const message = 'Container job exceeded its local ephemeral storage limit "50331648". ';
    expect(podJobState({ phase: 'Failed', reason: 'Evicted', message, containerStatuses: killed }))
      .toEqual({ phase: 'exited', exitCode: 137, oomKilled: false, evicted: message.trim() });
    expect(storageEviction(message)).toBe(true);
    expect(storageEviction('Pod ephemeral local storage usage exceeds the total limit of containers 48Mi. ')).toBe(true);
    expect(storageEviction('Usage of EmptyDir volume "artifacts" exceeds the limit "48Mi". ')).toBe(true);
    expect(storageEviction('The node was low on resource: memory. ')).toBe(false);
    expect(storageEviction('The node had condition: [DiskPressure]. ')).toBe(false);
  });
});

describe('nodeSilence', () => {
  const running = [{ name: 'job', state: { running: {} } } as never];
  const conditions = (ready: string, containersReady: string) => [{ type: 'Ready', status: ready }, { type: 'ContainersReady', status: containersReady }];
  const pod = (status: V1PodStatus) => ({ spec: { nodeName: 'n1', containers: [] }, status });

  it('is the node controller\'s mark only: Ready False while the containers were last reported ready, on a running job', () => {
    expect(nodeSilence(pod({ phase: 'Running', containerStatuses: running, conditions: conditions('False', 'True') })))
      .toBe('its node n1 stopped reporting to the cluster (the Pod is marked not ready while its containers were last reported ready)');
    // The kubelet's own not-ready (a container ended or is not ready) is not silence.
    expect(nodeSilence(pod({ phase: 'Running', containerStatuses: running, conditions: conditions('False', 'False') }))).toBeUndefined();
    expect(nodeSilence(pod({ phase: 'Running', containerStatuses: running, conditions: conditions('True', 'True') }))).toBeUndefined();
    // An exited job's state is final whatever the node does after.
    const exited = [{ name: 'job', state: { terminated: { exitCode: 0 } } } as never];
    expect(nodeSilence(pod({ phase: 'Running', containerStatuses: exited, conditions: conditions('False', 'True') }))).toBeUndefined();
  });
});
