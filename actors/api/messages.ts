/**
 * @module api/messages
 * The API actor answers no requests: it is the edge, and only calls other actors.
 */
export type ApiProtocol = Record<never, never>;
