/**
 * @module mount-source
 * The last look at a host directory before Podman bind-mounts it into a job: Podman resolves a
 * bind source by following links, so a link anywhere on the path would hand the job whatever it
 * points at (a host directory with the API and Podman sockets, say). Checked with lstat, one
 * component at a time: no symbolic link anywhere on the path, the last one a directory owned by
 * the expected uid.
 *
 * What it cannot close: a swap in the milliseconds between this check and Podman's own lookup.
 * Only user flashpods can write the sealed area (0750, shared/spec/host.md), and that user is
 * the API itself; the check catches everything done before the container is created.
 */
import { lstatSync } from 'node:fs';
import { isAbsolute, sep } from 'node:path';

/** A mount source that must not be mounted; the message says which component and why. */
export class MountSourceRefused extends Error {
  override readonly name = 'MountSourceRefused';
}

export function checkMountSource(path: string, ownerUid: number): void {
  const parts = path.split(sep).filter((p) => p !== '');
  if (!isAbsolute(path) || parts.length === 0) throw new MountSourceRefused(`${path} is not an absolute path below /`);
  let prefix = '';
  for (const [i, part] of parts.entries()) {
    prefix += `${sep}${part}`;
    const st = lstatSync(prefix, { throwIfNoEntry: false });
    if (!st) throw new MountSourceRefused(`${prefix} does not exist`);
    if (st.isSymbolicLink()) throw new MountSourceRefused(`${prefix} is a symbolic link; Flashpods never mounts through a link`);
    if (i < parts.length - 1) continue;
    if (!st.isDirectory()) throw new MountSourceRefused(`${prefix} is not a directory`);
    if (st.uid !== ownerUid) throw new MountSourceRefused(`${prefix} belongs to uid ${st.uid}, not to uid ${ownerUid}`);
  }
}
