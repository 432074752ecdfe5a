# systemd hardening shared by the two Flashpods units. Not here on purpose:
# MemoryDenyWriteExecute (V8's JIT needs W+X pages) and ProcSubset=pid (libuv reads
# /proc/cpuinfo and /proc/stat for the CPU count Flashpods sizes capacity with).
{
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateDevices = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  ProtectProc = "invisible";
  RestrictNamespaces = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  SystemCallArchitectures = "native";
  # @system-service leaves out @debug: no ptrace or process_vm_readv of a neighbour.
  SystemCallFilter = [ "@system-service" ];
  SystemCallErrorNumber = "EPERM";
  CapabilityBoundingSet = "";
  AmbientCapabilities = "";
  # Artifact directories are created 0755 (shared/spec/containers.md).
  UMask = "0022";
  Restart = "on-failure";
  RestartSec = 2;
  # Exit 2 is a setting or a missing prerequisite (a bad FLASHPODS_* value, no database for
  # `--actors api`): one line in the journal says what to fix, and restarting cannot fix it.
  RestartPreventExitStatus = 2;
}
