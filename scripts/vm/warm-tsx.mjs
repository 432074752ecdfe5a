/**
 * @module scripts/vm/warm-tsx
 * Fills tsx's compile cache with every TypeScript file of a checkout, without running any of
 * them: a load hook chained in front of tsx's lets tsx transform (and cache) each file, then
 * hands Node an empty module instead. scripts/flashpods-vm runs it on the build machine with the
 * checkout at the path it has in the guest (tsx's cache keys include the file's path), so the
 * units' first start in the VM does not compile under TCG (a real host fills the cache on its
 * first start).
 *
 *   TMPDIR=DIR node scripts/vm/warm-tsx.mjs ROOT DIR…   → DIR/tsx-<uid>/
 */
import { readdirSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerTsx } from 'tsx/esm/api';

const HOOK = `
export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !/\\.tsx?$/.test(new URL(url).pathname)) return nextLoad(url, context);
  await nextLoad(url, context);
  return { format: 'module', source: 'export {}', shortCircuit: true };
}`;

const [root, ...dirs] = process.argv.slice(2);
if (!root || dirs.length === 0) throw new Error('usage: warm-tsx.mjs ROOT DIR…');
registerTsx();
register(`data:text/javascript,${encodeURIComponent(HOOK)}`, import.meta.url);

function* typescriptFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules') yield* typescriptFiles(path);
    else if (entry.isFile() && /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path;
  }
}

let count = 0;
for (const dir of dirs) {
  for (const file of typescriptFiles(join(root, dir))) {
    await import(pathToFileURL(file).href);
    count += 1;
  }
}
// tsx writes its cache files asynchronously.
await new Promise((resolve) => setTimeout(resolve, 1000));
console.error(`warm-tsx: ${count} files compiled into ${process.env.TMPDIR ?? '/tmp'}`);
