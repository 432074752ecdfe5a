import { chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMountSource, MountSourceRefused } from '../../../actors/containers/mount-source.ts';

const uid = process.geteuid!();
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fp-mount-source-'));
  mkdirSync(join(root, 'real', 'sealed', 'upload_a'), { recursive: true });
  symlinkSync(join(root, 'real'), join(root, 'via-link'));
  symlinkSync(join(root, 'real', 'sealed', 'upload_a'), join(root, 'real', 'sealed', 'upload_b'));
  writeFileSync(join(root, 'real', 'sealed', 'upload_c'), '');
  mkdirSync(join(root, 'real', 'sealed', 'upload_d'));
  chownSync(join(root, 'real', 'sealed', 'upload_d'), uid + 1, uid + 1);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const refusal = (path: string) => {
  try {
    checkMountSource(path, uid);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(MountSourceRefused);
    return (err as Error).message;
  }
};

describe('checkMountSource (lstat of every component, never following a link)', () => {
  it('accepts a real directory owned by the expected uid', () => {
    expect(refusal(join(root, 'real', 'sealed', 'upload_a'))).toBeUndefined();
  });

  it('refuses a link as the last component, naming it', () => {
    const path = join(root, 'real', 'sealed', 'upload_b');
    expect(refusal(path)).toBe(`${path} is a symbolic link; Flashpods never mounts through a link`);
  });

  it('refuses a link anywhere on the path, even to the right place', () => {
    expect(refusal(join(root, 'via-link', 'sealed', 'upload_a'))).toBe(`${join(root, 'via-link')} is a symbolic link; Flashpods never mounts through a link`);
  });

  it('refuses a file, a foreign directory, a missing path and a relative one', () => {
    expect(refusal(join(root, 'real', 'sealed', 'upload_c'))).toBe(`${join(root, 'real', 'sealed', 'upload_c')} is not a directory`);
    expect(refusal(join(root, 'real', 'sealed', 'upload_d'))).toBe(`${join(root, 'real', 'sealed', 'upload_d')} belongs to uid ${uid + 1}, not to uid ${uid}`);
    expect(refusal(join(root, 'real', 'sealed', 'upload_e'))).toBe(`${join(root, 'real', 'sealed', 'upload_e')} does not exist`);
    expect(refusal('sealed/upload_a')).toBe('sealed/upload_a is not an absolute path below /');
  });
});
