/**
 * @module containers/kubernetes-role
 * What the Kubernetes executor may do on the cluster, as data: the verbs it uses per resource of
 * the core API group, in its namespace only. deploy/kubernetes/flashpods-rbac.yaml's Role is this
 * table as a manifest (a test keeps the two equal), and `flashpods validate` compares the
 * credentials' real rights with it: every verb present, nothing more (least privilege).
 */

/** Resource → verbs (see the manifest's header for what each is used for). */
export const ROLE_VERBS: Readonly<Record<string, readonly string[]>> = {
  pods: ['create', 'get', 'list', 'delete'],
  'pods/log': ['get'],
  'pods/attach': ['get', 'create'],
  'pods/exec': ['get', 'create'],
};

/**
 * What every authenticated user may do by the cluster's default roles, whatever its own: ask
 * what it may do (system:basic-user), and read the public trust anchors of ClusterTrustBundles
 * (system:cluster-trust-bundle-discovery, where that feature is on).
 */
const EVERYONE = new Set([
  'authorization.k8s.io/selfsubjectaccessreviews/create',
  'authorization.k8s.io/selfsubjectrulesreviews/create',
  'authentication.k8s.io/selfsubjectreviews/create',
  'certificates.k8s.io/clustertrustbundles/get',
  'certificates.k8s.io/clustertrustbundles/list',
  'certificates.k8s.io/clustertrustbundles/watch',
]);

export interface ResourceRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface RoleComparison {
  /** `resource verb` pairs of ROLE_VERBS no rule grants. */
  missing: string[];
  /** Grants beyond ROLE_VERBS: `group/resource verb` (`*` kept as given), with resourceNames when limited. */
  extra: string[];
}

/** Compares a SelfSubjectRulesReview's resource rules for the namespace with ROLE_VERBS. */
export function compareWithRole(rules: readonly ResourceRule[]): RoleComparison {
  const grants = (resource: string, verb: string) => rules.some((r) =>
    (r.apiGroups ?? []).some((g) => g === '' || g === '*')
    && (r.resources ?? []).some((x) => x === resource || x === '*')
    && r.verbs.some((v) => v === verb || v === '*')
    && (r.resourceNames ?? []).length === 0);
  const missing = Object.entries(ROLE_VERBS).flatMap(([resource, verbs]) => verbs.filter((v) => !grants(resource, v)).map((v) => `${resource} ${v}`));
  const extra = new Set<string>();
  for (const rule of rules) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) {
          const needed = (group === '' && ROLE_VERBS[resource]?.includes(verb) && (rule.resourceNames ?? []).length === 0) === true;
          const key = `${group}/${resource}/${verb}`;
          if (needed || EVERYONE.has(key)) continue;
          const names = (rule.resourceNames ?? []).length > 0 ? ` (${rule.resourceNames!.join(', ')})` : '';
          extra.add(`${group === '' ? '' : `${group}/`}${resource} ${verb}${names}`);
        }
      }
    }
  }
  return { missing, extra: [...extra].sort() };
}
