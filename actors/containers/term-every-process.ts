/**
 * @module actors/containers/term-every-process
 * The SIGTERM step of the kill sequence (cancel, timeout): every process of the job gets SIGTERM
 * and the time to act on it, not only the container's first process. A short POSIX shell script
 * is exec'd inside the container through the Docker-compatible exec API:
 *
 * 1. The main process (the init's oldest child: `/bin/sh -c <command>` or the agent entrypoint)
 *    is paused with SIGSTOP. The container ends with its main process — Podman's init
 *    (catatonit) exits with it and the kernel then SIGKILLs the rest of the PID namespace — so
 *    while the others clean up, the main process must not exit.
 * 2. Every other process gets SIGTERM, then SIGCONT (a stopped process could not act on it).
 * 3. Once they have all exited (zombies count as gone), the main process gets SIGTERM and
 *    SIGCONT. The job's exit code is the main process's: 143 when it dies on SIGTERM, its own
 *    when it handles it. Whatever is left at the end of the grace gets the caller's SIGKILL (137).
 *
 * Why this way, and not:
 * - `kill -TERM -1` alone: the main process dies on it together with its children, and the
 *   namespace collapses before their traps run (seen here: a child's TERM trap wrote its marker
 *   in 1 run of 5).
 * - catatonit's `-g` (signal the process group): Podman starts its init as `catatonit --` with no
 *   way to add flags, a process group misses anything that called setsid/setpgid, and the same
 *   collapse happens.
 * - signalling host pids (`podman top`, the cgroup's `cgroup.procs`): rootless Podman on cgroup v1
 *   has no per-container cgroup, the API unit would have to see and signal processes in Podman's
 *   user namespace, and a pid read on the host can be reused before the signal lands. Inside the
 *   container the PID namespace is exactly the job's processes, rootful or rootless, cgroup v1 or
 *   v2, and the exec runs as the container's user, who owns every job process (no capabilities,
 *   no-new-privileges: nothing in the job can change its uid).
 *
 * The script needs the image's `/bin/sh` (a worker's own command already runs through it) with its
 * `kill` and `read` builtins, and `sleep` while it waits. Known limits: a process forked by a
 * not-yet-signalled one between the listing and the signal misses SIGTERM, gets only the final
 * SIGKILL, and holds the main process's SIGTERM back until then; a cleanup that needs the paused
 * main process (writing into a pipe it reads) waits for the SIGKILL.
 */
import type Docker from 'dockerode';

/**
 * The sequence's end, shared with the Kubernetes executor's kill (pod-spec.ts killJobCommand):
 * wait while any process `pids` (a shell command) prints is alive, but `$main` and those `skip`
 * matches (a `case` pattern) — zombies count as gone — then SIGTERM and SIGCONT to `$main`.
 */
export function thenTermMain(pids: string, skip: string): string {
  return `others_alive() {
  for p in $(${pids}); do
    case $p in ${skip}) continue ;; esac
    read -r stat 2>/dev/null < "/proc/$p/stat" || continue
    set -- \${stat##*) }
    case $1 in Z|X) ;; *) return 0 ;; esac
  done
  return 1
}
while others_alive; do sleep 0.1 || break; done
kill -TERM "$main"
kill -CONT "$main"`;
}

/**
 * `/proc/<pid>/stat` fields after the `(comm)`: $1 state, $2 ppid, $20 start time. Processes
 * exec'd into the container (this script) have ppid 0 inside it, so only the init's children
 * have ppid 1; orphans re-parented to the init started after the main process. When the main
 * process cannot be found or paused, SIGTERM goes to the init, which forwards it to the main.
 */
export const TERM_EVERY_PROCESS_SCRIPT = `
me=$$
main=
main_start=
for p in /proc/[0-9]*; do
  read -r stat 2>/dev/null < "$p/stat" || continue
  set -- \${stat##*) }
  [ "$2" = 1 ] || continue
  if [ -z "$main" ] || [ "\${20}" -lt "$main_start" ]; then main=\${p#/proc/}; main_start=\${20}; fi
done
if [ -z "$main" ] || ! kill -STOP "$main"; then kill -TERM 1; exit 3; fi
for p in /proc/[0-9]*; do
  case \${p#/proc/} in 1|"$main"|"$me") continue ;; esac
  kill -TERM "\${p#/proc/}" 2>/dev/null && kill -CONT "\${p#/proc/}" 2>/dev/null
done
all_pids() { for d in /proc/[0-9]*; do echo "\${d#/proc/}"; done; }
${thenTermMain('all_pids', '1|"$main"|"$me"')}
`;

/**
 * Starts the script in the container and returns without waiting for it (it runs as long as the
 * job's processes take to exit; the caller's SIGKILL at the end of the grace ends it too).
 * Throws when the exec cannot be started: no `/bin/sh` in the container, the pids limit reached,
 * the container no longer running.
 */
export async function termEveryProcess(container: Docker.Container): Promise<void> {
  const exec = await container.exec({ Cmd: ['/bin/sh', '-c', TERM_EVERY_PROCESS_SCRIPT], AttachStdin: false, AttachStdout: false, AttachStderr: false });
  // The answer to a detached start is an empty stream: drain it so its socket is released.
  const answer = (await exec.start({ Detach: true })) as NodeJS.ReadableStream | undefined;
  answer?.resume();
}
