#!/bin/sh
# rsync daemon `pre-xfer exec` / `post-xfer exec` hook: keeps a register of the transfers in
# progress, so that POST /uploads/{id}/finalize can refuse (409 upload_in_progress) while rsync
# may still write into the upload (actors/scheduler/rsync-transfers.ts reads the register;
# docs/operations.md "Uploads: what finalize seals" says why).
#
#   transfer-hook.sh start|end <register directory>
#
# The daemon runs both as root, before it chroots, with RSYNC_PID set to the connection's
# process, which lives until `post-xfer exec` has run. `start` runs and is waited for before the
# transfer begins, so the entry exists before any byte of the upload is written; if it cannot be
# written the transfer is refused (fail closed). `end` runs however the transfer ended. An entry
# a killed daemon left behind is recognised as stale by the reader (no process RSYNC_PID).
#
# An entry is the file <register>/<RSYNC_PID> holding the path arguments of the request (what
# follows "." in RSYNC_ARG0..n, e.g. "/upload_x1y2z3a4b5c6/"), each ended by a NUL byte. Values
# the client chose are only ever printed, never evaluated.
set -u
action=${1:?usage: transfer-hook.sh start|end <register directory>}
register=${2:?usage: transfer-hook.sh start|end <register directory>}
pid=${RSYNC_PID:?RSYNC_PID is set by the rsync daemon}

case $action in
  start)
    tmp="$register/.$pid.tmp"
    if ! mkdir -p "$register" || ! {
      i=0
      paths=no
      while eval "[ -n \"\${RSYNC_ARG$i+set}\" ]"; do
        eval "arg=\$RSYNC_ARG$i"
        if [ "$paths" = yes ]; then printf '%s\0' "$arg"; elif [ "$arg" = . ]; then paths=yes; fi
        i=$((i + 1))
      done
    } >"$tmp" || ! mv -f "$tmp" "$register/$pid"; then
      rm -f "$tmp"
      echo "Flashpods could not register this upload (the rsync daemon cannot write $register); ask the host operator to check the rsync daemon's runtime directory."
      exit 1
    fi
    ;;
  end)
    rm -f "$register/$pid"
    ;;
  *)
    echo "transfer-hook.sh: unknown action $action" >&2
    exit 2
    ;;
esac
