/**
 * The host side of the artifact copy-out of a job Pod: a hostile tar, unpacked into a real
 * directory, never writes outside it nor through a link, and says what it dropped.
 */
import { constants, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unpackArtifacts } from '../../../actors/containers/kubernetes-artifacts.ts';

let root: string;
let target: string;
let outside: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'fp-k8s-unpack-'));
  target = join(root, 'artifacts');
  outside = join(root, 'outside');
  mkdirSync(target);
  mkdirSync(outside);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

type Entry = Parameters<tar.Pack['entry']>[0] & { body?: string };

async function unpack(entries: Entry[], caps = { maxBytes: 1 << 20, maxEntries: 100 }) {
  const pack = tar.pack();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry(header, body ?? '', (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  const stream = new PassThrough();
  void (async () => {
    for await (const chunk of pack) stream.write(chunk);
    stream.end();
  })();
  const fd = openSync(target, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    return await unpackArtifacts(stream, { targetDirFd: fd, ...caps });
  } finally {
    closeSync(fd);
  }
}

describe('unpackArtifacts', () => {
  it('writes files, directories and symlinks (unresolved), and drops what is not an artifact', async () => {
    const result = await unpack([
      { name: './', type: 'directory' },
      { name: './report.txt', type: 'file', body: 'the report\n', mode: 0o200 },
      { name: './d/', type: 'directory' },
      { name: './d/n.txt', type: 'file', body: 'nested\n' },
      { name: './link', type: 'symlink', linkname: '/etc/passwd' },
      { name: '../escape.txt', type: 'file', body: 'x' },
      { name: '/abs.txt', type: 'file', body: 'x' },
      { name: './hard', type: 'link', linkname: 'report.txt' },
      { name: './fifo', type: 'fifo' },
    ]);
    expect(readFileSync(join(target, 'report.txt'), 'utf8')).toBe('the report\n');
    expect(lstatSync(join(target, 'report.txt')).mode & 0o700).toBe(0o600); // the owner can read what the job locked
    expect(readFileSync(join(target, 'd/n.txt'), 'utf8')).toBe('nested\n');
    expect(readlinkSync(join(target, 'link'))).toBe('/etc/passwd');
    expect(existsSync(join(root, 'escape.txt'))).toBe(false);
    expect(result).toEqual({
      files: 2,
      bytes: 18,
      truncated: false,
      dropped: [
        { name: '../escape.txt', reason: 'it contains ".."' },
        { name: '/abs.txt', reason: 'an absolute path' },
        { name: 'hard', reason: 'a link entry is not an artifact' },
        { name: 'fifo', reason: 'a fifo entry is not an artifact' },
      ],
    });
  });

  it('never writes through a link: not one the tar made, not one already there', async () => {
    symlinkSync(outside, join(target, 'planted'));
    writeFileSync(join(outside, 'victim'), 'untouched');
    const result = await unpack([
      { name: 'l', type: 'symlink', linkname: outside },
      { name: 'l/x', type: 'file', body: 'through the tar link' },
      { name: 'planted/victim', type: 'file', body: 'overwritten' },
      { name: 'victim', type: 'file', body: 'fine' },
    ]);
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('untouched');
    expect(existsSync(join(outside, 'x'))).toBe(false);
    expect(readFileSync(join(target, 'victim'), 'utf8')).toBe('fine');
    expect(result.dropped).toEqual([{ name: 'l/x', reason: 'ENOTDIR' }, { name: 'planted/victim', reason: 'ENOTDIR' }]);
  });

  it('stops at the byte and entry caps while streaming', async () => {
    const bytes = await unpack([
      { name: 'a', type: 'file', body: '12345' },
      { name: 'b', type: 'file', body: '67890' },
      { name: 'c', type: 'file', body: 'x' },
    ], { maxBytes: 8, maxEntries: 100 });
    expect(bytes).toMatchObject({ files: 1, bytes: 5, truncated: true, dropped: [{ name: 'b', reason: 'past the copy\'s 8 byte budget' }] });
    expect(existsSync(join(target, 'c'))).toBe(false);
    rmSync(target, { recursive: true });
    mkdirSync(target);
    const entries = await unpack([
      { name: 'a', type: 'file', body: '1' },
      { name: 'b', type: 'file', body: '2' },
      { name: 'c', type: 'file', body: '3' },
    ], { maxBytes: 100, maxEntries: 2 });
    expect(entries).toMatchObject({ files: 2, truncated: true, dropped: [{ name: 'c', reason: 'more than 2 entries' }] });
  });
});
