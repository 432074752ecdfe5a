/**
 * @module task-pool-boot
 * Entry file of every CPU-task thread (piscina). Registers tsx (Node 20 threads do not inherit
 * the TypeScript loader) and exports the task module's default function as the handler.
 */
import { workerData } from 'piscina';
import { register } from 'tsx/esm/api';

register();
const task = await import(workerData.taskModule);
export default task.default;
