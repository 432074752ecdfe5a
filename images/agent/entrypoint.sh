#!/bin/sh
# Flashpods agent entrypoint (/entrypoint.sh), as spec/identity.md "Container entrypoints" and
# spec/containers.md describe it:
#   1. identity: wait ≤10 s for the SPIRE socket → JWT-SVID for flashpods-token-service (3 tries,
#      2 s apart) → trade it at the token socket (3 tries) → export ANTHROPIC_API_KEY and
#      GITHUB_TOKEN (both required). Failures exit 90 (spire_attestation_timeout) or 91
#      (token_exchange_failed); see /usr/local/lib/flashpods/identity.sh.
#   2. git: identity "Flashpods Agent <flashpods@local>", HTTPS credentials for github.com from
#      $GITHUB_TOKEN through a credential helper (the token is never in a URL, a config value or
#      a command line), check out FLASHPODS_GIT_BRANCH in /work (existing local branch, else the
#      remote's, else a new branch from HEAD; /work that is no repository is initialised).
#   3. the coding agent: $FLASHPODS_AGENT_CMD run by sh in /work with the prompt (FLASHPODS_TASK,
#      then FLASHPODS_CONTEXT) on its stdin and in $FLASHPODS_PROMPT_FILE. The image bakes the
#      command (production: Claude Code in print mode); Flashpods never sets it per job.
#   4. commit what the agent left uncommitted, push HEAD to refs/heads/$FLASHPODS_GIT_BRANCH on
#      the branch's remote (else `origin`, else the only remote; none → not pushed), then write
#      /artifacts/changes.patch (`git diff --binary` from the starting commit) and
#      /artifacts/summary.md.
# Exit: 0 done; 90/91 identity (reserved: an agent command exiting 90/91 is reported as 1);
# otherwise non-zero when the agent failed, the changes held a credential, or the push failed.
# What a failed agent left is still committed and pushed (the branch is for review, and the job
# fails) and the patch and summary are written — in every case but the credential one.
# Secrets are never printed, never on a command line, never written to /artifacts: changes
# containing a token are refused before commit, and agent output containing one is left out of
# the summary.
set -u

. /usr/local/lib/flashpods/identity.sh

WORK=${FLASHPODS_WORK_DIR:-/work}
ARTIFACTS=${FLASHPODS_ARTIFACTS_DIR:-/artifacts}
BRANCH=${FLASHPODS_GIT_BRANCH:-}
EMPTY_TREE=4b825dc642cb6eb9a060e54bf8d69288fbee4904

die() { fp_log "$*"; exit 1; }

[ -n "$BRANCH" ] || die "FLASHPODS_GIT_BRANCH is not set"
[ -n "${FLASHPODS_TASK:-}" ] || die "FLASHPODS_TASK is not set"
[ -n "${FLASHPODS_AGENT_CMD:-}" ] || die "FLASHPODS_AGENT_CMD is not set (the image names the coding agent command)"

# ---- 1. identity -------------------------------------------------------------------------
fp_exchange agent

# ---- 2. git ------------------------------------------------------------------------------
# HOME gets git's global config and the coding agent's own files, so it must be writable and
# outside the checkout: a user the image's passwd does not know (rootless keep-id) gets
# HOME=WORKDIR=/work from Podman, which would commit .gitconfig; a missing one is unwritable.
case "${HOME:-/}/" in
  / | //* | "$WORK"/* | "$ARTIFACTS"/*) HOME=/tmp/flashpods-home ;;
esac
if ! mkdir -p "$HOME" 2>/dev/null || [ ! -w "$HOME" ]; then HOME=/tmp/flashpods-home; fi
mkdir -p "$HOME"
export HOME
export GIT_TERMINAL_PROMPT=0
STATE=$(mktemp -d /tmp/flashpods.XXXXXX)

git config --global user.name 'Flashpods Agent'
git config --global user.email 'flashpods@local'
# /work belongs to whoever uploaded it; the container is the only user of this checkout.
git config --global --add safe.directory '*'
# Only github.com gets the token, only over HTTPS; the helper reads it from the environment.
git config --global credential.https://github.com.helper \
  '!f() { test "$1" = get || return 0; echo username=x-access-token; echo "password=${GITHUB_TOKEN}"; }; f'

mkdir -p "$WORK" "$ARTIFACTS"
cd "$WORK" || die "cannot enter $WORK"
notes=
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git init -q . || die "cannot initialise a git repository in $WORK"
  notes="$WORK was not a git repository: initialised one (no remote, nothing pushed)."
fi

start_branch=$(git symbolic-ref -q --short HEAD || true)
pick_remote() {
  for r in "$(git config "branch.$BRANCH.remote" || true)" "$(git config "branch.$start_branch.remote" 2>/dev/null || true)"; do
    [ -n "$r" ] && [ "$r" != . ] && git remote get-url "$r" >/dev/null 2>&1 && { echo "$r"; return; }
  done
  if git remote get-url origin >/dev/null 2>&1; then echo origin; return; fi
  [ "$(git remote | wc -l)" -eq 1 ] && git remote
}
REMOTE=$(pick_remote)

if ! git rev-parse -q --verify HEAD >/dev/null; then
  git symbolic-ref HEAD "refs/heads/$BRANCH" || die "cannot start branch $BRANCH"
elif git show-ref --verify --quiet "refs/heads/$BRANCH"; then
  git checkout -q "$BRANCH" || die "cannot check out $BRANCH (local changes in the upload conflict with it?)"
elif [ -n "$REMOTE" ] && git show-ref --verify --quiet "refs/remotes/$REMOTE/$BRANCH"; then
  git checkout -q -b "$BRANCH" --track "$REMOTE/$BRANCH" || die "cannot check out $REMOTE/$BRANCH"
else
  git checkout -q -b "$BRANCH" || die "cannot create branch $BRANCH"
fi
BASE=$(git rev-parse -q --verify HEAD || echo "$EMPTY_TREE")
fp_log "on branch $BRANCH at $(printf '%.12s' "$BASE") in $WORK (remote: ${REMOTE:-none})"

# ---- 3. the coding agent -----------------------------------------------------------------
FLASHPODS_PROMPT_FILE=$STATE/prompt.md
export FLASHPODS_PROMPT_FILE
{
  printf '%s\n' "$FLASHPODS_TASK"
  if [ -n "${FLASHPODS_CONTEXT:-}" ]; then printf '\n## Context\n\n%s\n' "$FLASHPODS_CONTEXT"; fi
  printf '\n---\nYou are working in %s, a git checkout on branch %s. Leave your changes in the working tree (or commit them); Flashpods commits what is left, pushes the branch and reports the diff.\n' "$WORK" "$BRANCH"
} >"$FLASHPODS_PROMPT_FILE"

fp_log "running the coding agent"
{ sh -c "$FLASHPODS_AGENT_CMD" <"$FLASHPODS_PROMPT_FILE"; echo $? >"$STATE/agent.rc"; } 2>&1 | tee "$STATE/agent.out"
agent_rc=$(cat "$STATE/agent.rc" 2>/dev/null || echo 1)
case $agent_rc in "$FP_EXIT_SPIRE_ATTESTATION_TIMEOUT" | "$FP_EXIT_TOKEN_EXCHANGE_FAILED") agent_rc=1 ;; esac
fp_log "the coding agent exited with $agent_rc"
cd "$WORK" || die "cannot enter $WORK"

# Does the file (or stdin, "-") contain any of the tokens? Patterns reach grep on its stdin.
holds_secret() {
  printf '%s\n' "$ANTHROPIC_API_KEY" "$GITHUB_TOKEN" | grep -qF -f /dev/stdin "$1"
}

# ---- 4. commit, push, report ---------------------------------------------------------------
rc=0
commit_note=
git add -A
git diff --cached --binary >"$STATE/staged.patch"
if holds_secret "$STATE/staged.patch"; then
  git reset -q
  rm -f "$STATE/staged.patch"
  fp_log "the changes contain a credential: refusing to commit, push or report them"
  { printf '# Flashpods agent job %s\n\n' "${FLASHPODS_JOB_ID:-}"
    printf 'Refused: the changes contain a credential handed to this job. Nothing was committed or pushed.\n'; } >"$ARTIFACTS/summary.md"
  exit 1
fi
if ! git diff --cached --quiet; then
  subject=$(printf '%s\n' "$FLASHPODS_TASK" | sed -n '/[^[:space:]]/{s/^[[:space:]]*//;p;q;}' | cut -c1-60)
  printf 'Flashpods agent: %s\n\nJob: %s\n' "$subject" "${FLASHPODS_JOB_ID:-unknown}" >"$STATE/message"
  if git commit -q --no-verify -F "$STATE/message"; then commit_note="committed the agent's uncommitted changes"
  else rc=1; commit_note="git commit failed"; fi
fi
HEAD_SHA=$(git rev-parse -q --verify HEAD || true)

push_note="nothing to push (no new commit)"
if [ -n "$HEAD_SHA" ] && [ "$HEAD_SHA" != "$BASE" ]; then
  if [ -z "$REMOTE" ]; then
    push_note="not pushed: the repository has no remote"
  elif git push --no-verify "$REMOTE" "HEAD:refs/heads/$BRANCH" 2>&1; then
    remote_sha=$(git ls-remote "$REMOTE" "refs/heads/$BRANCH" 2>/dev/null | cut -f1)
    if [ "$remote_sha" = "$HEAD_SHA" ]; then push_note="pushed $HEAD_SHA to $REMOTE as refs/heads/$BRANCH (confirmed with ls-remote)"
    else push_note="pushed to $REMOTE, but ls-remote reports ${remote_sha:-no ref} for refs/heads/$BRANCH"; rc=1; fi
  else
    push_note="push of refs/heads/$BRANCH to $REMOTE FAILED"
    rc=1
  fi
fi
fp_log "$push_note"

git diff --binary "$BASE" HEAD >"$ARTIFACTS/changes.patch" 2>/dev/null || : >"$ARTIFACTS/changes.patch"
{
  printf '# Flashpods agent job %s\n\n' "${FLASHPODS_JOB_ID:-}"
  printf -- '- branch: `%s`\n- base: `%s`\n- head: `%s`\n' "$BRANCH" "$BASE" "${HEAD_SHA:-none}"
  printf -- '- coding agent exit code: %s\n' "$agent_rc"
  [ -n "$commit_note" ] && printf -- '- %s\n' "$commit_note"
  printf -- '- push: %s\n' "$push_note"
  [ -n "$notes" ] && printf -- '- note: %s\n' "$notes"
  printf '\n## Task\n\n%s\n' "$(printf '%s\n' "$FLASHPODS_TASK" | head -n 20)"
  printf '\n## Commits\n\n```\n'
  [ "$BASE" != "$EMPTY_TREE" ] && git log --oneline "$BASE..HEAD" 2>/dev/null
  [ "$BASE" = "$EMPTY_TREE" ] && git log --oneline HEAD 2>/dev/null
  printf '```\n\n## Files changed\n\n```\n'
  git diff --stat "$BASE" HEAD 2>/dev/null
  printf '```\n\n## Agent output (last 50 lines)\n\n'
  if holds_secret "$STATE/agent.out"; then
    printf '(left out: it contains a credential)\n'
  else
    printf '```\n'; tail -n 50 "$STATE/agent.out"; printf '```\n'
  fi
} >"$ARTIFACTS/summary.md"
rm -rf "$STATE"

[ "$agent_rc" -ne 0 ] && rc=$agent_rc
exit "$rc"
