/**
 * Issue 16, identity: the real SPIRE agent's k8s workload attestor attests a job Pod of the
 * real single-node cluster (test/support/kubernetes.ts). The agent runs in the cluster's network
 * namespace and asks the kubelet's secure port (127.0.0.1:10250, the attestor's default without
 * a node name) for the node's Pods with an x509 client certificate from the cluster CA, verified
 * against that CA; the kubelet authorizes it through the API server (SubjectAccessReview) with a
 * ClusterRole granting `nodes/proxy` get — what SPIRE's documentation asks for.
 *
 * The registration entry a Flashpods cluster needs for workers (agents: the same with
 * `flashpods-job-type:agent`):
 *   spire-server entry create -parentID <agent> -spiffeID spiffe://flashpods.local/worker \
 *     -selector k8s:ns:flashpods -selector k8s:pod-label:flashpods-job-type:worker \
 *     -selector k8s:container-name:job
 * `k8s:container-name:job` keeps the identity to the job container: the `upload` and `artifacts`
 * helpers of the same Pod (pod-spec.ts) match the Pod's labels too. The socket reaches the Pod as
 * a hostPath volume here; a production cluster would use the SPIFFE CSI driver (no hostPath),
 * which pod-spec.ts does not add yet.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { jobPod, jobPodName, podJobState, POD_CONTAINERS } from '../../actors/containers/pod-spec.ts';
import { WORKER_TEST_IMAGE } from '../support/identity.ts';
import { startKubernetesCluster, type KubernetesCluster } from '../support/kubernetes.ts';
import { TEST_IMAGE } from '../support/podman.ts';
import { HOST_ID, startSpire, TRUST_DOMAIN_ID, type Spire } from '../support/spire.ts';

const WORKER_ID = `${TRUST_DOMAIN_ID}/worker`;
let cluster: KubernetesCluster;
let spire: Spire;
let admin: CoreV1Api;
const figures: Record<string, number> = {};

beforeAll(async () => {
  const t0 = Date.now();
  cluster = await startKubernetesCluster({ images: [TEST_IMAGE, WORKER_TEST_IMAGE] });
  figures.clusterStartMs = Date.now() - t0;
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.adminKubeconfig);
  admin = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({ body: {
    metadata: { name: 'spire-agent-kubelet' },
    rules: [{ apiGroups: [''], resources: ['nodes/proxy', 'nodes/pods'], verbs: ['get'] }],
  } });
  await rbac.createClusterRoleBinding({ body: {
    metadata: { name: 'spire-agent-kubelet' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'spire-agent-kubelet' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'spire-agent' }],
  } });
  const client = cluster.clientCertificate('spire-agent');
  const t1 = Date.now();
  spire = await startSpire({
    // The docker attestor finds no Podman container for a Pod's cgroup and is skipped.
    podmanSocket: `${cluster.dir}/no-podman.sock`,
    netns: cluster.netns,
    entries: [],
    extraAgentPlugins: `
    WorkloadAttestor "k8s" {
        plugin_data {
            kubelet_secure_port = 10250
            kubelet_ca_path = "${cluster.caFile}"
            certificate_path = "${client.cert}"
            private_key_path = "${client.key}"
        }
    }`,
  });
  await spire.server('entry', 'create', '-parentID', HOST_ID, '-spiffeID', WORKER_ID,
    '-selector', `k8s:ns:${cluster.namespace}`, '-selector', 'k8s:pod-label:flashpods-job-type:worker', '-selector', `k8s:container-name:${POD_CONTAINERS.job}`);
  await spire.waitForEntries([WORKER_ID]);
  figures.spireReadyMs = Date.now() - t1;
}, 600_000);

afterAll(async () => {
  await spire?.stop();
  await cluster?.stop();
  console.log('kubernetes + spire timings', JSON.stringify(figures));
}, 180_000);

describe('SPIRE k8s workload attestor on the real cluster', () => {
  it('attests the job container of a worker Pod as spiffe://flashpods.local/worker', async () => {
    const pod: V1Pod = jobPod({
      jobId: 'job_spirek8s', jobType: 'worker', image: WORKER_TEST_IMAGE, cpus: 0.5, memoryGb: 0.25, timeoutSeconds: 300, killGraceSeconds: 3,
      command: 'spire-agent api fetch x509 -socketPath /run/spire/sockets/agent.sock -timeout 20s | grep "SPIFFE ID"',
      artifactsSizeLimitBytes: 1024 ** 2,
      settings: { namespace: cluster.namespace, nodeSelector: {}, runAsUser: 1000, helperImage: TEST_IMAGE, imagePullPolicy: 'Never' },
    });
    // The socket as a hostPath volume (admin: the Flashpods Role never creates those).
    pod.spec!.volumes!.push({ name: 'spire', hostPath: { path: `${spire.dir}/sockets`, type: 'Directory' } });
    pod.spec!.containers[0]!.volumeMounts!.push({ name: 'spire', mountPath: '/run/spire/sockets', readOnly: true });
    const t0 = Date.now();
    await admin.createNamespacedPod({ namespace: cluster.namespace, body: pod });
    const name = jobPodName('job_spirek8s');
    let state = podJobState(undefined);
    while (state.phase !== 'exited' && state.phase !== 'gone' && Date.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 250));
      state = podJobState((await admin.readNamespacedPod({ name, namespace: cluster.namespace })).status);
    }
    figures.attestedPodMs = Date.now() - t0;
    const log = await admin.readNamespacedPodLog({ name, namespace: cluster.namespace, container: POD_CONTAINERS.job });
    expect({ state, log }).toEqual({ state: expect.objectContaining({ phase: 'exited', exitCode: 0 }), log: `SPIFFE ID:\t\t${WORKER_ID}\n` });
    // The k8s selectors the agent derived for the job's process (DEBUG log), the entry's three among them.
    const attested = spire.logs().split('\n').find((l) => l.includes('msg="PID attested to have selectors"') && l.includes('pod-name:job-spirek8s'));
    const k8sSelectors = [...(attested ?? '').matchAll(/type:\\"k8s\\" value:\\"([^\\]*)/g)].map((m) => m[1]);
    expect(k8sSelectors).toEqual(expect.arrayContaining([`ns:${cluster.namespace}`, 'pod-label:flashpods-job-type:worker', 'container-name:job', 'pod-name:job-spirek8s', 'node-name:fp-node']));
  }, 120_000);
});
