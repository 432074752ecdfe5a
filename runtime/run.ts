/**
 * @module run
 * Runs a supervisor as the whole process: SIGTERM/SIGINT shut it down gracefully (exit 0), giving
 * up over a restart budget exits 1 with the reason (systemd then restarts the unit).
 */
import { Supervisor, type ChildSpec, type SupervisorOptions } from './supervisor.ts';

export async function runSupervised(specs: ChildSpec[], options: Omit<SupervisorOptions, 'onGiveUp'>): Promise<Supervisor> {
  const { logger } = options;
  const supervisor = new Supervisor(specs, {
    ...options,
    onGiveUp: (reason) => {
      logger.fatal({ event: 'exit', exitCode: 1, reason }, `exiting with code 1: ${reason}`);
      process.exit(1);
    },
  });
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // A second Ctrl-C is a human insisting; repeated SIGTERMs (process-group delivery) are not.
      if (signal === 'SIGINT') {
        logger.warn({ event: 'exit', signal }, 'second SIGINT: exiting without waiting for actors');
        process.exit(1);
      }
      logger.info({ event: 'shutdown', signal }, `${signal} again: already shutting down`);
      return;
    }
    signalled = true;
    void supervisor.shutdown(`received ${signal}`).then(() => {
      logger.info({ event: 'exit', exitCode: 0 }, 'all actors stopped; exiting');
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await supervisor.start();
  return supervisor;
}
