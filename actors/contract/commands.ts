/**
 * @module contract/commands
 * What an executor answers to a command: only that it took it. The outcome arrives later as a
 * fact reported to the scheduler, so a slow container or a large artifact tree never holds a
 * call open, and a command that is never answered is covered by the next reconcile pass.
 */
export type Accepted = { accepted: true };

export const ACCEPTED: Accepted = { accepted: true };
