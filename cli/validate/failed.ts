/**
 * @module cli/validate/failed
 * A failed check of `flashpods validate`: what was seen, and one line on what to do.
 */
export class Failed extends Error {
  constructor(readonly detail: string, readonly hint: string) {
    super(detail);
    this.name = 'Failed';
  }
}
