/**
 * @module contract/artifacts
 * The artifact name rule of storage.md, shared by the indexer, the download route and the MCP
 * shim: names are file names, not paths.
 */
export const MAX_ARTIFACT_NAME = 255;

/** Why `name` is not a valid artifact name, or undefined when it is. */
export function artifactNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_ARTIFACT_NAME) return `it is longer than ${MAX_ARTIFACT_NAME} characters`;
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (name.includes('/')) return 'it contains "/"';
  if (name.includes('\\')) return 'it contains "\\"';
  if (name.includes('..')) return 'it contains ".."';
  if (name !== name.trim()) return 'it has leading or trailing whitespace';
  return undefined;
}
