/**
 * @module scheduler/messages
 * The scheduler owns every write to the store. Its protocol grows with each area it serves.
 */
export type SchedulerProtocol = {
  schemaVersion: { req: Record<string, never>; res: { version: number } };
};
