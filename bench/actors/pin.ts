/**
 * @module bench/actors/pin
 * `--pin` support: binds the calling thread (not the whole process) to one CPU with taskset(1).
 * Linux only. Where the scheduler puts the pinger and ponger threads decides the sequential
 * figures on a small VM (see bench/README.md), so the bench can fix it to compare.
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';

export type PinConfig = { pin?: Record<string, number> };

export function pinThisThread(cpu: number): void {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()!;
  execFileSync('taskset', ['-p', '-c', String(cpu), tid], { stdio: 'ignore' });
}

/** Pins the actor's thread if the bench asked for it (ctx.config.pin[name]). */
export function pinFromConfig(name: string, config: unknown): void {
  const cpu = (config as PinConfig | undefined)?.pin?.[name];
  if (cpu !== undefined) pinThisThread(cpu);
}
