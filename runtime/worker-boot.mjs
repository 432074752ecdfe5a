/**
 * @module worker-boot
 * Entry file of every actor thread. Node 20 does not pass the main thread's TypeScript loader
 * on to worker threads, so each thread registers tsx itself before loading the actor host.
 */
import { register } from 'tsx/esm/api';

register();
await import('./actor-host.ts');
