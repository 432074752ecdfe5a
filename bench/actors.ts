/**
 * @module bench/actors
 * Actor round-trip benchmark. Starts a Supervisor with two bench actors on worker threads — a
 * `ponger` that answers `ping` and a `pinger` that calls it — and asks the pinger to perform
 * round trips for a fixed time, (a) one call in flight and (b) pipelined. In the same run the same
 * `ping` handler is awaited as a plain same-thread async call on the main thread as a baseline.
 *
 *   node --import tsx bench/actors.ts [--seconds 5] [--warmup 1] [--in-flight 32] [--pin same|split]
 *
 * --pin (Linux, needs taskset) binds the two actor threads to CPU 0 (same) or to CPUs 0 and 1
 * (split); by default the kernel places them, as in production.
 *
 * Prints a table to stdout, then one JSON line with every figure (the last line of stdout).
 * The supervisor logs (level warn) go to stderr.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger } from '../runtime/log.ts';
import { Supervisor, type ChildSpec } from '../runtime/supervisor.ts';
import { measure, type MeasureOptions, type MeasureResult } from './measure.ts';
import type { PinConfig } from './actors/pin.ts';
import type { PingerProtocol } from './actors/pinger.ts';
import { ping } from './actors/ponger.ts';

const TARGET = { perSecond: 50_000, p99Ms: 1 };

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'in-flight': { type: 'string', default: '32' },
    pin: { type: 'string' },
  },
});
const seconds = Number(args.seconds);
const warmupSeconds = Number(args.warmup);
const pipelined = Number(args['in-flight']);
const pin = args.pin ?? 'none';
if (!(seconds > 0) || !(warmupSeconds >= 0) || !(Number.isInteger(pipelined) && pipelined >= 2) || !['none', 'same', 'split'].includes(pin)) {
  console.error('usage: node --import tsx bench/actors.ts [--seconds N>0] [--warmup N>=0] [--in-flight N>=2] [--pin same|split]');
  process.exit(2);
}

function spec(name: string): ChildSpec {
  return {
    name,
    module: new URL(`./actors/${name}.ts`, import.meta.url).href,
    // A crash must fail the bench, not be papered over by a restart.
    restart: 'temporary',
    maxRestarts: 0,
    periodMs: 60_000,
    backoff: { initialMs: 100, maxMs: 100 },
  };
}

const logger = createLogger({ format: 'json', level: 'warn', destination: process.stderr });
const supervisor = new Supervisor([spec('ponger'), spec('pinger')], {
  logger,
  config: { pin: pin === 'same' ? { ponger: 0, pinger: 0 } : pin === 'split' ? { ponger: 0, pinger: 1 } : undefined } satisfies PinConfig,
  stopGraceMs: 1_000,
  onGiveUp: (reason) => {
    console.error(`supervisor gave up: ${reason}`);
    process.exit(1);
  },
});

const modes = [
  { mode: 'sequential', inFlight: 1 },
  { mode: 'pipelined', inFlight: pipelined },
] as const;
type Mode = (typeof modes)[number]['mode'];

// Another busy process on a 2-core machine skews every figure; say so rather than hide it.
const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
if (loadAtStart[0]! > 0.5) process.stderr.write(`warning: 1-min load average is ${loadAtStart[0]} — other processes compete for the CPUs\n`);

const startedAt = performance.now();
await supervisor.start();
const supervisorStartMs = performance.now() - startedAt;
const pinger = supervisor.ref<PingerProtocol>('pinger');

const actor = {} as Record<Mode, MeasureResult>;
const baseline = {} as Record<Mode, MeasureResult>;
try {
  for (const { mode, inFlight } of modes) {
    const options: MeasureOptions = { inFlight, warmupMs: warmupSeconds * 1000, durationMs: seconds * 1000 };
    process.stderr.write(`actor    ${mode} (${inFlight} in flight): ${warmupSeconds} s warm-up + ${seconds} s…\n`);
    actor[mode] = await pinger.call('run', options, { timeoutMs: options.warmupMs + options.durationMs + 30_000 });
  }
  for (const { mode, inFlight } of modes) {
    const options: MeasureOptions = { inFlight, warmupMs: warmupSeconds * 1000, durationMs: seconds * 1000 };
    process.stderr.write(`baseline ${mode} (${inFlight} in flight): ${warmupSeconds} s warm-up + ${seconds} s…\n`);
    baseline[mode] = await measure((seq) => ping({ seq }), options);
  }
} finally {
  await supervisor.shutdown('bench done');
}

const ratio = (a: number, b: number) => (b === 0 ? null : a / b);
const targetMet = (r: MeasureResult) => r.perSecond >= TARGET.perSecond && r.latencyUs.p99 < TARGET.p99Ms * 1000;

const report = {
  bench: 'actors',
  date: new Date().toISOString(),
  machine: {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAvgAtStart: loadAtStart,
  },
  settings: { seconds, warmupSeconds, pipelinedInFlight: pipelined, pin },
  supervisorStartMs: Math.round(supervisorStartMs),
  actor,
  baseline,
  // actor ÷ baseline: < 1 for throughput (actor is slower), > 1 for latency (actor takes longer).
  ratio: Object.fromEntries(modes.map(({ mode }) => [mode, {
    perSecond: ratio(actor[mode].perSecond, baseline[mode].perSecond),
    p50: ratio(actor[mode].latencyUs.p50, baseline[mode].latencyUs.p50),
    p99: ratio(actor[mode].latencyUs.p99, baseline[mode].latencyUs.p99),
  }])) as Record<Mode, { perSecond: number | null; p50: number | null; p99: number | null }>,
  target: {
    perSecond: TARGET.perSecond,
    p99Ms: TARGET.p99Ms,
    met: Object.fromEntries(modes.map(({ mode }) => [mode, targetMet(actor[mode])])) as Record<Mode, boolean>,
  },
};

// ---- human-readable table ----
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const us = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US'));
const rows: string[][] = [['', 'mode', 'in flight', 'calls', 'round trips/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'max µs']];
for (const [side, results] of [['actor', actor], ['baseline', baseline]] as const) {
  for (const { mode } of modes) {
    const r = results[mode];
    rows.push([side, mode, String(r.inFlight), int(r.calls), int(r.perSecond), us(r.latencyUs.p50), us(r.latencyUs.p99), us(r.latencyUs.p999), us(r.latencyUs.max)]);
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
const line = (row: string[]) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
const out: string[] = [];
out.push(`Actor round trips: pinger → ponger on worker threads (ctx.peer().call), vs. awaiting the same handler on the main thread`);
out.push(`${report.machine.nproc} CPUs (${report.machine.cpu}), ${report.machine.memGiB} GiB, Node ${report.machine.node}; ${warmupSeconds} s warm-up + ${seconds} s per row; actor threads pinned: ${pin}; supervisor start ${report.supervisorStartMs} ms`);
out.push('');
out.push(line(rows[0]!));
out.push(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of rows.slice(1)) out.push(line(row));
out.push('');
for (const { mode } of modes) {
  const r = report.ratio[mode];
  out.push(`actor/baseline ${mode.padEnd(10)}: throughput ×${r.perSecond?.toFixed(4)}, p50 ×${r.p50?.toFixed(1)}, p99 ×${r.p99?.toFixed(1)}`);
}
for (const { mode } of modes) {
  const r = actor[mode];
  out.push(`target ≥ ${int(TARGET.perSecond)} round trips/s with p99 < ${TARGET.p99Ms} ms, ${mode.padEnd(10)}: ${report.target.met[mode] ? 'MET' : 'NOT MET'} (${int(r.perSecond)}/s, p99 ${(r.latencyUs.p99 / 1000).toFixed(3)} ms)`);
}
out.push('');
out.push(JSON.stringify(report));
process.stdout.write(out.join('\n') + '\n');
process.exit(0);
