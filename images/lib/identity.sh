# Flashpods identity steps for job containers (spec/identity.md, "Container entrypoints").
# POSIX sh, sourced by /entrypoint.sh (agent) and /usr/local/bin/flashpods-tokens (worker);
# installed as /usr/local/lib/flashpods/identity.sh.
#
#   fp_exchange agent|worker
#     1. waits up to 10 s for the SPIRE Workload API socket to answer;
#     2. fetches a JWT-SVID for audience flashpods-token-service (3 tries, 2 s apart);
#     3. trades it at the token socket, GET /tokens (3 tries, 2 s apart);
#     4. exports the tokens the identity is entitled to:
#          agent  → ANTHROPIC_API_KEY and GITHUB_TOKEN, both required;
#          worker → GITHUB_TOKEN required; ANTHROPIC_API_KEY must come back null and stays unset.
#   On failure it exits the calling shell with a reserved code (the single source of these
#   numbers is ENTRYPOINT_EXIT_CODES in actors/contract/jobs.ts, which maps them to the job's
#   `error`):
#     90  spire_attestation_timeout — the socket never answered, or no SVID after 3 tries
#     91  token_exchange_failed     — no usable answer from the token service after 3 tries,
#                                     or a token the identity needs is missing
#
# Secrets: the SVID and the tokens live only in shell variables and the environment. They are
# never printed, never written to a file, and never passed as an argument (the SVID reaches
# curl on its stdin as a header: `-H @-`); values are extracted with sed reading stdin.
# Overridable for tests: FLASHPODS_SPIRE_SOCKET, FLASHPODS_TOKEN_SOCKET, FLASHPODS_SPIRE_WAIT_SECONDS.

FP_EXIT_SPIRE_ATTESTATION_TIMEOUT=90
FP_EXIT_TOKEN_EXCHANGE_FAILED=91
FP_AUDIENCE=flashpods-token-service
FP_SPIRE_SOCKET=${FLASHPODS_SPIRE_SOCKET:-/run/spire/sockets/agent.sock}
FP_TOKEN_SOCKET=${FLASHPODS_TOKEN_SOCKET:-/run/flashpods/token.sock}
FP_SPIRE_WAIT_SECONDS=${FLASHPODS_SPIRE_WAIT_SECONDS:-10}
FP_TRIES=3
FP_RETRY_SECONDS=2

fp_log() { printf 'flashpods: %s\n' "$*" >&2; }

# fp_fail CODE ERROR MESSAGE — the last line names the job error, for the log reader.
fp_fail() {
  fp_log "$3"
  fp_log "$2 (exit $1)"
  exit "$1"
}

# Runs "$@" with a time limit when `timeout` exists (busybox and coreutils both have it).
fp_bounded() {
  fp_secs=$1; shift
  if command -v timeout >/dev/null 2>&1; then timeout "$fp_secs" "$@"; else "$@"; fi
}

fp_wait_for_spire() {
  fp_start=$(date +%s)
  while :; do
    if [ -S "$FP_SPIRE_SOCKET" ] && fp_bounded 3 spire-agent healthcheck -shallow -socketPath "$FP_SPIRE_SOCKET" >/dev/null 2>&1; then
      return 0
    fi
    if [ $(( $(date +%s) - fp_start )) -ge "$FP_SPIRE_WAIT_SECONDS" ]; then
      if [ -S "$FP_SPIRE_SOCKET" ]; then fp_why="the SPIRE agent socket $FP_SPIRE_SOCKET does not answer"
      else fp_why="no SPIRE agent socket at $FP_SPIRE_SOCKET"; fi
      fp_fail "$FP_EXIT_SPIRE_ATTESTATION_TIMEOUT" spire_attestation_timeout "$fp_why after ${FP_SPIRE_WAIT_SECONDS} s"
    fi
    sleep 1
  done
}

# Sets fp_svid (never printed) and fp_spiffe_id.
fp_fetch_svid() {
  fp_try=1
  while :; do
    fp_err=$(mktemp)
    fp_out=$(spire-agent api fetch jwt -audience "$FP_AUDIENCE" -socketPath "$FP_SPIRE_SOCKET" -output json -timeout 5s 2>"$fp_err")
    fp_rc=$?
    fp_reason=$(tr '\n' ' ' <"$fp_err" | cut -c1-300)
    rm -f "$fp_err"
    if [ "$fp_rc" -eq 0 ]; then
      fp_svid=$(printf '%s\n' "$fp_out" | sed -n 's/.*"svid":"\([^"]*\)".*/\1/p' | head -n 1)
      fp_spiffe_id=$(printf '%s\n' "$fp_out" | sed -n 's/.*"spiffe_id":"\([^"]*\)".*/\1/p' | head -n 1)
      [ -n "$fp_svid" ] && return 0
      fp_reason="the SPIRE agent answered without a JWT-SVID"
    fi
    fp_log "JWT-SVID fetch $fp_try/$FP_TRIES failed: ${fp_reason:-exit $fp_rc}"
    [ "$fp_try" -ge "$FP_TRIES" ] && fp_fail "$FP_EXIT_SPIRE_ATTESTATION_TIMEOUT" spire_attestation_timeout \
      "no JWT-SVID for audience $FP_AUDIENCE after $FP_TRIES tries"
    fp_try=$((fp_try + 1))
    sleep "$FP_RETRY_SECONDS"
  done
}

# Prints the string value of "KEY" in the JSON on stdin; nothing for null or absent.
fp_json_string() { sed -n "s/.*\"$1\":\"\\([^\"\\\\]*\\)\".*/\\1/p" | head -n 1; }

# Sets fp_body (holds tokens: never printed).
fp_trade() {
  fp_try=1
  while :; do
    fp_err=$(mktemp)
    fp_resp=$(printf 'Authorization: Bearer %s\n' "$fp_svid" | curl -sS --max-time 10 --unix-socket "$FP_TOKEN_SOCKET" \
      -H @- -w '\n%{http_code}' http://token-service/tokens 2>"$fp_err")
    fp_rc=$?
    fp_reason=$(tr '\n' ' ' <"$fp_err" | cut -c1-300)
    rm -f "$fp_err"
    fp_status=$(printf '%s\n' "$fp_resp" | tail -n 1)
    fp_body=$(printf '%s\n' "$fp_resp" | sed '$d')
    if [ "$fp_rc" -eq 0 ] && [ "$fp_status" = 200 ]; then return 0; fi
    if [ "$fp_rc" -eq 0 ]; then
      # Refusals are {error, message}: no secret in them.
      fp_reason="HTTP $fp_status $(printf '%s\n' "$fp_body" | fp_json_string error)"
    fi
    fp_body=
    fp_log "token exchange $fp_try/$FP_TRIES at $FP_TOKEN_SOCKET failed: ${fp_reason:-curl exit $fp_rc}"
    [ "$fp_try" -ge "$FP_TRIES" ] && fp_fail "$FP_EXIT_TOKEN_EXCHANGE_FAILED" token_exchange_failed \
      "the token service gave no tokens after $FP_TRIES tries"
    fp_try=$((fp_try + 1))
    sleep "$FP_RETRY_SECONDS"
  done
}

fp_exchange() {
  fp_kind=$1
  fp_wait_for_spire
  fp_fetch_svid
  fp_log "attested as $fp_spiffe_id; exchanging a JWT-SVID for tokens"
  fp_trade
  fp_svid=
  fp_gh=$(printf '%s\n' "$fp_body" | fp_json_string GITHUB_TOKEN)
  fp_ant=$(printf '%s\n' "$fp_body" | fp_json_string ANTHROPIC_API_KEY)
  fp_body=
  [ -n "$fp_gh" ] || fp_fail "$FP_EXIT_TOKEN_EXCHANGE_FAILED" token_exchange_failed "the token service sent no GITHUB_TOKEN"
  case $fp_kind in
    agent)
      [ -n "$fp_ant" ] || fp_fail "$FP_EXIT_TOKEN_EXCHANGE_FAILED" token_exchange_failed "the token service sent no ANTHROPIC_API_KEY (attested as $fp_spiffe_id)"
      ANTHROPIC_API_KEY=$fp_ant
      export ANTHROPIC_API_KEY
      ;;
    worker)
      # A worker must get ANTHROPIC_API_KEY null: anything else means the identity is wrong.
      [ -z "$fp_ant" ] || { fp_ant=; fp_fail "$FP_EXIT_TOKEN_EXCHANGE_FAILED" token_exchange_failed "a worker was granted ANTHROPIC_API_KEY (attested as $fp_spiffe_id); refusing to run"; }
      unset ANTHROPIC_API_KEY
      ;;
    *) fp_fail 2 usage "fp_exchange: unknown job type '$fp_kind'" ;;
  esac
  GITHUB_TOKEN=$fp_gh
  export GITHUB_TOKEN
  fp_gh=
  fp_ant=
  fp_log "tokens received for $fp_spiffe_id: $( [ "$fp_kind" = agent ] && echo 'ANTHROPIC_API_KEY, GITHUB_TOKEN' || echo 'GITHUB_TOKEN')"
}
