/**
 * The Kubernetes executor's rights as data (kubernetes-role.ts): the shipped manifest's Role is
 * exactly that table, and the comparison `flashpods validate` makes finds a missing verb, a grant
 * beyond it (wildcards included), and ignores what every user may do.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadAllYaml, type V1Role } from '@kubernetes/client-node';
import { compareWithRole, ROLE_VERBS, type ResourceRule } from '../../../actors/containers/kubernetes-role.ts';

const MANIFEST = new URL('../../../deploy/kubernetes/flashpods-rbac.yaml', import.meta.url);
const ROLE_RULES: ResourceRule[] = Object.entries(ROLE_VERBS).map(([resource, verbs]) => ({ apiGroups: [''], resources: [resource], verbs: [...verbs] }));
const SELF_REVIEWS: ResourceRule[] = [
  { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
  { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
  { apiGroups: ['certificates.k8s.io'], resources: ['clustertrustbundles'], verbs: ['get', 'list', 'watch'] },
];

describe('the executor\'s Role', () => {
  it('is what deploy/kubernetes/flashpods-rbac.yaml grants, verb for verb', () => {
    const role = (loadAllYaml(readFileSync(MANIFEST, 'utf8')) as Array<{ kind: string }>).find((d) => d.kind === 'Role') as V1Role;
    expect(compareWithRole(role.rules!)).toEqual({ missing: [], extra: [] });
    const granted = role.rules!.flatMap((r) => r.resources!.flatMap((res) => r.verbs.map((v) => `${res} ${v}`))).sort();
    expect(granted).toEqual(Object.entries(ROLE_VERBS).flatMap(([res, verbs]) => verbs.map((v) => `${res} ${v}`)).sort());
  });

  it('compares a rules review: missing verbs, grants beyond the Role, wildcards, names; the self-reviews every user has do not count', () => {
    expect(compareWithRole([...ROLE_RULES, ...SELF_REVIEWS])).toEqual({ missing: [], extra: [] });
    expect(compareWithRole(ROLE_RULES.filter((r) => r.resources![0] !== 'pods/exec'))).toEqual({ missing: ['pods/exec get', 'pods/exec create'], extra: [] });
    expect(compareWithRole([...ROLE_RULES, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }, { apiGroups: ['apps'], resources: ['deployments'], verbs: ['create'] }]))
      .toEqual({ missing: [], extra: ['apps/deployments create', 'secrets get'] });
    // cluster-admin: everything is granted, and everything is too much.
    expect(compareWithRole([{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }])).toEqual({ missing: [], extra: ['*/* *'] });
    // A grant limited to names does not cover a job Pod (their names are not known beforehand).
    expect(compareWithRole([{ apiGroups: [''], resources: ['pods'], verbs: ['create', 'get', 'list', 'delete'], resourceNames: ['job-x'] }, ...ROLE_RULES.slice(1)]))
      .toEqual({ missing: ['pods create', 'pods get', 'pods list', 'pods delete'], extra: ['pods create (job-x)', 'pods delete (job-x)', 'pods get (job-x)', 'pods list (job-x)'] });
  });
});
