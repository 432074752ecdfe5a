import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { activeTransfers, transferTarget, transfersInto } from '../../../actors/scheduler/rsync-transfers.ts';

const ID = 'upload_abcdefabcdef';
const OTHER = 'upload_123456123456';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A pid that surely ran and is gone now. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('transferTarget (path arguments as the daemon hands them to transfer-hook.sh)', () => {
  it('confines a transfer to the upload its paths name', () => {
    expect(transferTarget([`/${ID}/`])).toBe(ID);
    expect(transferTarget([`/${ID}/sub/dir`, `${ID}`])).toBe(ID);
  });

  it('treats the module root, several ids, `..` or an unknown name as any upload', () => {
    expect(transferTarget(['/'])).toBe('*');
    expect(transferTarget([])).toBe('*');
    expect(transferTarget([`/${ID}/`, `/${OTHER}/`])).toBe('*');
    expect(transferTarget([`/${OTHER}/../${ID}/`])).toBe('*');
    expect(transferTarget(['/junk/'])).toBe('*');
  });
});

describe('activeTransfers (the register of scripts/rsyncd/transfer-hook.sh)', () => {
  it('counts live entries only: not those of ended processes, not entries being written', async () => {
    const register = mkdtempSync(join(tmpdir(), 'fp-transfers-'));
    dirs.push(register);
    writeFileSync(join(register, String(process.pid)), `/${ID}/\0`);
    writeFileSync(join(register, String(await deadPid())), `/${OTHER}/\0`);
    writeFileSync(join(register, `.${process.ppid}.tmp`), `/${OTHER}/\0`);
    expect(activeTransfers(register)).toEqual([ID]);
    expect(transfersInto(register, ID)).toBe(1);
    expect(transfersInto(register, OTHER)).toBe(0);
    // A transfer into the module root may write into any upload.
    writeFileSync(join(register, String(process.ppid)), '/\0');
    expect(transfersInto(register, OTHER)).toBe(1);
    expect(transfersInto(register, ID)).toBe(2);
  });

  it('reads a register that does not exist yet as no transfer', () => {
    expect(activeTransfers(join(tmpdir(), 'fp-no-such-register'))).toEqual([]);
  });
});
