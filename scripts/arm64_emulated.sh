#!/usr/bin/env bash
# lanai on arm64, proven by emulation (correctness only: nothing here says how fast a Pi is).
#
# Builds (once, cached) a Debian bookworm arm64 userland with debootstrap and qemu-user-static, installs
# lanai into a venv there from this checkout's HEAD with only the core dependencies (aarch64 wheels from
# the package index), starts `lanai serve` (HTTP only, loopback), classifies a real photo of a cat from the
# host, runs `lanai doctor --quick --json`, and prints how long each phase took.
#
# Needs root (debootstrap, chroot, mounts) on a Debian/Ubuntu x86_64 host with network access to a
# Debian mirror and the package index. Usage:  sudo scripts/arm64_emulated.sh
#
# Environment:
#   LANAI_TEST_CACHE     cache root (default ~/.cache/lanai-tests); the rootfs is <cache>/arm64-bookworm/rootfs
#                        and each run's logs, wheel list and timings go to <cache>/arm64-bookworm/run/
#   LANAI_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the first Debian URI this host's apt uses)
#   LANAI_PHOTO          the photo to classify (default: scikit-image's chelsea.png, a tabby cat)
#   LANAI_ARM64_TIMEOUT  seconds to wait for the first /health/ready (default 1800)
#   LANAI_QEMU_CPU       the CPU qemu emulates (default cortex-a76, the Raspberry Pi 5's core)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${LANAI_TEST_CACHE:-$HOME/.cache/lanai-tests}/arm64-bookworm"
rootfs="$cache/rootfs"
out="$cache/run"
venv=/opt/lanai-venv
src=/opt/lanai-src
home_in=/root/lanai-home
ready_timeout="${LANAI_ARM64_TIMEOUT:-1800}"
qemu_cpu="${LANAI_QEMU_CPU:-cortex-a76}"

server_pid=""
mounted_binfmt=0
declare -a timings=()

say() { printf '[arm64] %s\n' "$*" >&2; }
die() { printf '[arm64] FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
record() {  # record PHASE START: appends "phase seconds" to the timings
    local secs
    secs="$(elapsed "$2")"
    timings+=("$1 $secs")
    printf '%s %s\n' "$1" "$secs" >>"$out/timings.txt"
    say "$1 took ${secs}s"
}

unmount_under() {  # every mount point under $1, deepest first
    local target
    while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done < <(awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
}

cleanup() {
    local code=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    unmount_under "$rootfs"
    unmount_under "$rootfs.partial"
    if [ "$mounted_binfmt" = 1 ]; then umount /proc/sys/fs/binfmt_misc 2>/dev/null || true; fi
    if [ "$code" -ne 0 ]; then say "exit status $code (logs in $out)"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
[ "$(uname -m)" = x86_64 ] || say "host is $(uname -m), not x86_64: continuing anyway"
mkdir -p "$cache" "$out"
rm -f "$out"/*
total_start="$(now)"

# --- host packages -------------------------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$out/apt.log" 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$out/apt.log" 2>&1; } \
        || die "apt-get install ${missing[*]} (see $out/apt.log)"
fi

# --- binfmt_misc: the kernel hands aarch64 ELF files to qemu-aarch64-static ----------------------------
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
    mounted_binfmt=1
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    # register by hand from the package's spec (F: the interpreter is opened now, so it works in a chroot)
    spec=/usr/share/binfmts/qemu-aarch64
    [ -f "$spec" ] || die "no $spec: is qemu-user-static installed?"
    magic="$(awk '$1 == "magic" { print $2 }' "$spec")"
    mask="$(awk '$1 == "mask" { print $2 }' "$spec")"
    interp="$(awk '$1 == "interpreter" { print $2 }' "$spec")"
    printf ':qemu-aarch64:M::%s:%s:%s:F' "$magic" "$mask" "$interp" >/proc/sys/fs/binfmt_misc/register \
        || die "cannot register qemu-aarch64 with binfmt_misc"
fi
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "qemu-aarch64 is registered without the F flag: a chroot could not find the interpreter"

# --- the arm64 rootfs (cached) -------------------------------------------------------------------------
mirror="${LANAI_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' | grep -v security | grep -m1 debian || true)"
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' \
        /etc/apt/sources.list | grep -v security | grep -m1 debian || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

if [ -f "$rootfs/.lanai-complete" ]; then
    say "reusing the arm64 rootfs in $rootfs"
    printf 'debootstrap cached\n' >>"$out/timings.txt"
else
    say "debootstrap bookworm arm64 from $mirror into $rootfs (under emulation: several minutes)"
    start="$(now)"
    unmount_under "$rootfs"
    unmount_under "$rootfs.partial"
    rm -rf "$rootfs" "$rootfs.partial"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs.partial" "$mirror" >"$out/debootstrap.log" 2>&1 \
        || { tail -n 20 "$out/debootstrap.log" >&2; die "debootstrap (see $out/debootstrap.log)"; }
    unmount_under "$rootfs.partial"
    mv "$rootfs.partial" "$rootfs"
    touch "$rootfs/.lanai-complete"
    record debootstrap "$start"
fi

# verify by running aarch64 binaries
machine="$(chroot "$rootfs" /bin/uname -m)" || die "cannot run an aarch64 binary in $rootfs"
[ "$machine" = aarch64 ] || die "the chroot's uname -m says $machine, not aarch64"
file_py="$(chroot "$rootfs" /usr/bin/python3 -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])')"
say "chroot runs: $file_py"

# --- mounts for the chroot -----------------------------------------------------------------------------
mount -t proc proc "$rootfs/proc"
for fs in sys dev; do
    mkdir -p "$rootfs/$fs"
    mount --rbind "/$fs" "$rootfs/$fs"
    mount --make-rslave "$rootfs/$fs"
done
# qemu-user 7.2 (bookworm's) passes the HOST's /proc/cpuinfo through: an x86 one, with no "CPU part" lines.
# ONNX Runtime's cpuinfo library then reads the CPU count from /sys and the cores from /proc/cpuinfo, finds
# none, and `import onnxruntime` dies with SIGSEGV (with only one of /proc, /sys mounted it does not). A
# real arm64 board has an arm64 /proc/cpuinfo; give the chroot one that matches the CPU qemu emulates
# (Cortex-A76 by default: implementer 0x41, part 0xd0b, a Pi 5's), one entry per host core.
cpuinfo="$cache/cpuinfo"
: >"$cpuinfo"
for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i" >>"$cpuinfo"
done
mount --bind "$cpuinfo" "$rootfs/proc/cpuinfo"
if [ -L "$rootfs/etc/resolv.conf" ] || [ ! -e "$rootfs/etc/resolv.conf" ]; then
    rm -f "$rootfs/etc/resolv.conf"
    touch "$rootfs/etc/resolv.conf"
fi
mount --bind /etc/resolv.conf "$rootfs/etc/resolv.conf"

# the host's proxy settings and package index, if any, pass through (nothing else of the host's environment)
passthrough=()
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    if [ -n "${!name:-}" ]; then passthrough+=("$name=${!name}"); fi
done
in_root() {
    chroot "$rootfs" /usr/bin/env -i HOME=/root LANG=C.UTF-8 LANAI_HOME="$home_in" QEMU_CPU="$qemu_cpu" "${passthrough[@]}" \
        PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
}

# CAs this host trusts locally (e.g. a TLS-inspecting proxy's) go into the rootfs's trust store too, or
# pip there cannot reach the package index through that proxy
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    if ! diff -rq /usr/local/share/ca-certificates "$rootfs/usr/local/share/ca-certificates" >/dev/null 2>&1; then
        say "adding this host's local CAs ($(cd /usr/local/share/ca-certificates && echo ./*.crt)) to the rootfs"
        mkdir -p "$rootfs/usr/local/share/ca-certificates"
        cp -a /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
        in_root update-ca-certificates >"$out/ca.log" 2>&1 || die "update-ca-certificates in the rootfs (see $out/ca.log)"
    fi
fi

# --- the checkout (HEAD) into the rootfs, and a fresh venv ----------------------------------------------
rm -rf "${rootfs:?}$src" "${rootfs:?}$venv" "${rootfs:?}$home_in"
mkdir -p "$rootfs$src"
git -C "$repo" archive --format=tar HEAD | tar -x -C "$rootfs$src"
say "copied $(git -C "$repo" rev-parse --short HEAD) into $src"

say "pip install lanai (core dependencies only) into $venv"
start="$(now)"
in_root python3 -m venv "$venv" >"$out/venv.log" 2>&1 || die "python3 -m venv (see $out/venv.log)"
# --prefer-binary: a dependency without an aarch64 wheel for cp311 is the finding, not something to hide;
# pip builds it from its sdist then, and the wheel list below says which (platform tag "sdist")
in_root pip install --prefer-binary --report /tmp/pip-report.json "$src" >"$out/pip-install.log" 2>&1 \
    || { tail -n 30 "$out/pip-install.log" >&2; die "pip install (see $out/pip-install.log)"; }
record pip_install "$start"
cp "$rootfs/tmp/pip-report.json" "$out/pip-report.json"
python3 - "$out/pip-report.json" >"$out/wheels.txt" <<'EOF'
import json, sys
from urllib.parse import unquote, urlparse

report = json.load(open(sys.argv[1]))
for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    url = item["download_info"]["url"]
    filename = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    if url.startswith("file:"):
        tag = "local-source"
    elif filename.endswith(".whl"):
        tag = "-".join(filename[:-4].split("-")[-3:])
    else:
        tag = "sdist"
    print(f"{name} {version} {tag} {filename}")
EOF
say "wheels (name version python-abi-platform file), also in $out/wheels.txt:"
sed 's/^/    /' "$out/wheels.txt" >&2
if grep -q ' sdist ' "$out/wheels.txt"; then
    say "built from source (no aarch64 wheel for cp311): $(awk '$3 == "sdist" { print $1 }' "$out/wheels.txt" | xargs)"
fi

# --- the photo -----------------------------------------------------------------------------------------
photo="${LANAI_PHOTO:-}"
if [ -z "$photo" ]; then
    photo="$cache/chelsea.png"
    if [ ! -s "$photo" ]; then
        # scikit-image's chelsea (a tabby), taken from its wheel: any platform's wheel carries the same file
        in_root pip download --no-deps --only-binary=:all: --dest /tmp/skimage 'scikit-image==0.24.0' \
            >"$out/photo.log" 2>&1 || die "pip download scikit-image (see $out/photo.log)"
        in_root python3 -c 'import glob, zipfile, sys; z = zipfile.ZipFile(glob.glob("/tmp/skimage/*.whl")[0]); sys.stdout.buffer.write(z.read("skimage/data/chelsea.png"))' \
            >"$photo.partial" || die "no chelsea.png in the scikit-image wheel"
        mv "$photo.partial" "$photo"
        rm -rf "$rootfs/tmp/skimage"
    fi
fi
[ -s "$photo" ] || die "no photo at $photo"

# --- lanai serve ---------------------------------------------------------------------------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "lanai serve on 127.0.0.1:$port (first start: creates the store, trial-loads the model in a child)"
start="$(now)"
in_root lanai serve --host 127.0.0.1 --port "$port" --no-grpc --no-discovery >"$out/serve.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + ready_timeout))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health/ready" 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$out/serve.log" >&2; die "lanai serve exited (see $out/serve.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$out/serve.log" >&2; die "not ready after ${ready_timeout}s"; }
    sleep 2
done
record serve_first_start "$start"
curl -fsS "http://127.0.0.1:$port/health" >"$out/health.json" || die "GET /health"
health_machine="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["device"]["machine"])' "$out/health.json" 2>/dev/null || echo unknown)"
say "/health says the server runs on $health_machine"
[ "$health_machine" = aarch64 ] || die "/health reports machine $health_machine, not aarch64"

# --- classify a photo from the host ------------------------------------------------------------------------
start="$(now)"
curl -fsS --max-time 600 -F "file=@$photo" \
    "http://127.0.0.1:$port/v1/models/efficientnet-lite0/classify?top_k=3" >"$out/classify.json" \
    || die "classify request failed (see $out/serve.log)"
record classify "$start"
label="$(python3 - "$out/classify.json" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
print(f"{answer['label']} ({answer['score']:.2f})")
cats = ("tabby", "tiger cat", "Egyptian cat")
sys.exit(0 if any(answer["label"].startswith(cat) for cat in cats) else 1)
EOF
)" || die "top-1 is $label, not one of ImageNet's cat classes (tabby, tiger cat, Egyptian cat)"
say "classify: $label"
printf 'classify %s\n' "$label" >"$out/result.txt"

# --- lanai doctor --------------------------------------------------------------------------------------
start="$(now)"
set +e
in_root lanai doctor --quick --json >"$out/doctor.json" 2>"$out/doctor.log"
doctor_code=$?
set -e
record doctor "$start"
if [ "$doctor_code" = 1 ] && grep -q 'SIOCETHTOOL' "$out/doctor.log"; then
    # qemu-user 7.2 does not translate the ethtool ioctl (ENOSYS), so psutil.net_if_stats() raises and the
    # doctor's network check (lanai.doctor.check_network) takes the whole command down. A real arm64 kernel
    # answers it. Record that, then run the same doctor again with only that call shimmed (ENOSYS -> no
    # per-interface stats, which check_network already allows for), so the rest is still checked.
    say "lanai doctor exited 1 on qemu-user's missing SIOCETHTOOL ioctl (emulation); again with net_if_stats shimmed"
    printf 'doctor_unshimmed_exit %s SIOCETHTOOL-ENOSYS\n' "$doctor_code" >>"$out/result.txt"
    cp "$out/doctor.log" "$out/doctor-unshimmed.log"
    set +e
    in_root python - >"$out/doctor.json" 2>"$out/doctor.log" <<'EOF'
import errno
import sys

import psutil

from lanai.cli import main

real_net_if_stats = psutil.net_if_stats


def net_if_stats():
    try:
        return real_net_if_stats()
    except OSError as error:
        if error.errno != errno.ENOSYS:
            raise
        return {}


psutil.net_if_stats = net_if_stats
sys.exit(main(["doctor", "--quick", "--json"]))
EOF
    doctor_code=$?
    set -e
fi
printf 'doctor_exit %s\n' "$doctor_code" >>"$out/result.txt"
[ "$doctor_code" = 0 ] || [ "$doctor_code" = 3 ] \
    || { cat "$out/doctor.json" "$out/doctor.log" >&2; die "lanai doctor exited $doctor_code (0 or 3 expected)"; }
python3 - "$out/doctor.json" <<'EOF' >&2 || die "lanai doctor --json printed no report"
import json, sys
report = json.load(open(sys.argv[1]))
for check in report.get("checks", []):
    print(f"    doctor: {check.get('name')}: {check.get('status')}: {check.get('detail', check.get('message', ''))}")
EOF
# the doctor's report names no CPU architecture; the interpreter it ran under is checked instead
doctor_machine="$(in_root python -c 'import platform; print(platform.machine())')"
[ "$doctor_machine" = aarch64 ] || die "the venv's python runs as $doctor_machine, not aarch64"
if grep -q aarch64 "$out/doctor.json"; then doctor_says=aarch64; else doctor_says="(no architecture in its report)"; fi
say "doctor exited $doctor_code under $doctor_machine python; its report says $doctor_says"
printf 'doctor_machine %s\n' "$doctor_machine" >>"$out/result.txt"

# --- stop ----------------------------------------------------------------------------------------------
kill -TERM "$server_pid"
for _ in $(seq 1 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
if kill -0 "$server_pid" 2>/dev/null; then die "lanai serve did not stop within 60 s of SIGTERM"; fi
wait "$server_pid" 2>/dev/null || true
server_pid=""

record total "$total_start"
say "timings (seconds, under emulation: correctness only, not speed):"
for line in "${timings[@]}"; do say "    $line"; done
say "PASSED: lanai serves, classifies ($label) and self-tests on aarch64 (emulated)"
printf 'passed\n' >>"$out/result.txt"
