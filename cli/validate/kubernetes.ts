/**
 * @module cli/validate/kubernetes
 * The checks `flashpods validate` adds with FLASHPODS_EXECUTOR=kubernetes (README "Running on a
 * cluster"): the API server answers with the configured credentials, and those credentials may do
 * in FLASHPODS_KUBERNETES_NAMESPACE exactly what the executor does (kubernetes-role.ts): every
 * verb it needs, and nothing more. The end-to-end `job` check then runs a job as a Pod.
 */
import { AuthorizationV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../actors/containers/kubernetes-executor.ts';
import { compareWithRole, ROLE_VERBS } from '../../actors/containers/kubernetes-role.ts';
import type { FlashpodsConfig } from '../../actors/contract/config.ts';
import { Failed } from './failed.ts';

const MANIFEST = 'deploy/kubernetes/flashpods-rbac.yaml';

function kubeConfig(config: FlashpodsConfig): KubeConfig {
  try {
    return loadKubeConfig(config.kubernetes.kubeconfig, config.kubernetes.apiUrl);
  } catch (err) {
    throw new Failed((err as Error).message, 'point FLASHPODS_KUBERNETES_KUBECONFIG at a kubeconfig whose current context is the cluster and Flashpods\' credentials');
  }
}

function apiError(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown; message?: string };
  if (typeof e.code === 'number') return `HTTP ${e.code}: ${String(typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? '')).slice(0, 200)}`;
  return e.message ?? String(err);
}

/** The API server answers (its version) with the configured credentials. */
export async function kubernetesApi(config: FlashpodsConfig): Promise<string> {
  const kc = kubeConfig(config);
  const server = kc.getCurrentCluster()!.server;
  try {
    const version = await kc.makeApiClient(VersionApi).getCode();
    return `${server} answers, Kubernetes ${version.major}.${version.minor} (${version.gitVersion})`;
  } catch (err) {
    throw new Failed(`${server}: ${apiError(err)}`, 'check the address (FLASHPODS_KUBERNETES_API_URL or the kubeconfig\'s server), the CA and the token; kubectl --kubeconfig <it> version says the same');
  }
}

/** The credentials' rights in the namespace, against ROLE_VERBS. */
export async function kubernetesRole(config: FlashpodsConfig): Promise<string> {
  const kc = kubeConfig(config);
  const namespace = config.kubernetes.namespace;
  let review;
  try {
    review = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectRulesReview({ body: { spec: { namespace } } });
  } catch (err) {
    throw new Failed(`the API server did not say what these credentials may do: ${apiError(err)}`, 'the kubernetes-api check says whether the API server answers at all');
  }
  const { missing, extra } = compareWithRole(review.status?.resourceRules ?? []);
  const incomplete = review.status?.incomplete ? ` (the API server's answer is incomplete: ${review.status.evaluationError ?? 'no reason given'})` : '';
  if (missing.length > 0) {
    throw new Failed(`in namespace ${namespace} these credentials may not: ${missing.join('; ')}${incomplete}`,
      `kubectl apply -f ${MANIFEST} and use a token of its ServiceAccount (kubectl -n ${namespace} create token flashpods)`);
  }
  if (extra.length > 0) {
    throw new Failed(`in namespace ${namespace} these credentials may also: ${extra.slice(0, 12).join('; ')}${extra.length > 12 ? `; and ${extra.length - 12} more` : ''}`,
      `give Flashpods credentials bound to the Role of ${MANIFEST} only (least privilege: a job host needs no more)`);
  }
  return `in namespace ${namespace}: ${Object.entries(ROLE_VERBS).map(([r, v]) => `${r} ${v.join(' ')}`).join('; ')}; nothing more${incomplete}`;
}
