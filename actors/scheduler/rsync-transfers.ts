/**
 * @module rsync-transfers
 * Which rsync transfers are in progress, from the register the daemon keeps through
 * scripts/rsyncd/transfer-hook.sh: one file per connection, named by the pid of the daemon
 * process serving it, holding the request's path arguments (each ended by NUL).
 *
 * Why a register rather than a look at /proc: the transfer processes have switched uid, so they
 * are not dumpable and their cwd cannot be read by the API's user, and the API unit runs with
 * ProtectProc=invisible (nix/modules/hardening.nix). Liveness needs no /proc: kill(pid, 0) says
 * ESRCH once the process is gone, and EPERM (alive) for the root-owned connection process.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ID_PATTERNS } from '../contract/jobs.ts';

/** The upload a transfer writes into, or `'*'` when its request does not confine it to one. */
export type TransferTarget = string;

/**
 * The upload id a request's path arguments confine the transfer to. A request for the module
 * root, several ids, a `..` step or anything unexpected may write into any upload: `'*'`.
 */
export function transferTarget(pathArgs: string[]): TransferTarget {
  const ids = new Set<string>();
  for (const arg of pathArgs) {
    const parts = arg.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..') || parts.length === 0 || !ID_PATTERNS.upload.test(parts[0]!)) return '*';
    ids.add(parts[0]!);
  }
  return ids.size === 1 ? [...ids][0]! : '*';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * The targets of the transfers in progress. A missing register means no daemon has run a
 * transfer since it started (the daemon creates it at the first one). An entry being written
 * (`.<pid>.tmp`) is not yet a transfer: its transfer begins only after the rename.
 */
export function activeTransfers(register: string): TransferTarget[] {
  let names: string[];
  try {
    names = readdirSync(register);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const targets: TransferTarget[] = [];
  for (const name of names) {
    if (!/^[1-9][0-9]*$/.test(name) || !alive(Number(name))) continue;
    let content: string;
    try {
      content = readFileSync(join(register, name), 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // ended meanwhile
      throw err;
    }
    const args = content.split('\0');
    args.pop(); // after the last NUL: empty for a complete entry
    targets.push(transferTarget(args));
  }
  return targets;
}

/** How many transfers in progress may write into upload `id`. */
export function transfersInto(register: string, id: string): number {
  return activeTransfers(register).filter((t) => t === id || t === '*').length;
}
