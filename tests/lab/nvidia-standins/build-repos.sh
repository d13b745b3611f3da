#!/usr/bin/env bash
# Build STAND-IN NVIDIA packages under their real names and two signed apt repositories, at test
# time, inside a throwaway test host. Nothing here is a real driver: the packages carry small
# scripts (nvidia-smi prints a recorded real nvidia-smi output; nvidia-container-runtime execs runc)
# so apt, dpkg, dockerd and the roles can be exercised for real on a machine without a GPU.
#
#   build-repos.sh OUT_DIR FIXTURE_DIR FIXTURE_NAME [KERNEL_RELEASE]
#
# OUT_DIR/debian   Debian-layout repository (dists/<codename>/non-free) with the driver packages
# OUT_DIR/toolkit  flat repository ("/" suite, NVIDIA's layout) with the toolkit at two versions
# OUT_DIR/key.asc  the throwaway public key both are signed with (the secret key is deleted)
#
# On a host whose /etc/os-release says ID=ubuntu (molecule/nvidia_ubuntu: a Debian base that
# identifies as Ubuntu 22.04 or 24.04), Ubuntu's and NVIDIA's names and layouts instead of Debian's:
# OUT_DIR/ubuntu   Ubuntu-archive layout (dists/<codename>/restricted): nvidia-driver-<branch>-server
#                  [-open], nvidia-utils-, libnvidia-compute-, nvidia-compute-utils- (nvidia-persistenced),
#                  nvidia-dkms-<branch>-server[-open], ... at <v>-0ubuntu0.<VERSION_ID>.1 and .2,
#                  each with "Source: nvidia-graphics-drivers-<branch>-server" as Ubuntu builds them
# OUT_DIR/cuda/repos/ubuntu<NNNN>/<arch>/  NVIDIA's flat CUDA repository layout: cuda-keyring,
#                  cuda-drivers-<branch>, nvidia-open-<branch>, nvidia-driver-<branch>[-open], ... at
#                  <v>-0ubuntu1 and <v>-1ubuntu1, and the key as NVIDIA publishes it (3bf863cc.pub)
#
# Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg; all are in the gpulab base image.
set -euo pipefail

out=${1:?OUT_DIR}
fixtures=${2:?FIXTURE_DIR}
fixture=${3:?FIXTURE_NAME, e.g. h100-80gb-hbm3}
kernel=${4:-$(uname -r)}
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
os_id=$(. /etc/os-release && echo "$ID")
os_version=$(. /etc/os-release && echo "$VERSION_ID")
arch=$(dpkg --print-architecture)
driver_version=$(sed -n 's/.*Driver Version *: *\([0-9.]*\).*/\1/p' "$fixtures/$fixture.q.txt" | head -1)
[[ -n $driver_version ]] || { echo "no Driver Version in $fixtures/$fixture.q.txt" >&2; exit 1; }
toolkit_versions=(1.17.8-1 1.17.9-1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out/toolkit"

# pkg NAME VERSION DEST_DIR "Depends line or empty" [SRC_TREE]
pkg() {
  local name=$1 version=$2 dest=$3 depends=$4 tree=${5:-}
  local root="$work/$name-$version"
  mkdir -p "$root/DEBIAN"
  [[ -n $tree ]] && cp -a "$tree/." "$root/"
  {
    echo "Package: $name"
    echo "Version: $version"
    [[ -n ${PKG_SOURCE:-} ]] && echo "Source: $PKG_SOURCE"
    echo "Architecture: ${PKG_ARCH:-$arch}"
    echo "Maintainer: gpulab.provision tests <tests@gpulab.invalid>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Section: non-free/misc"
    echo "Priority: optional"
    echo "Description: STAND-IN for $name (gpulab.provision tests, not NVIDIA software)"
  } >"$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$dest/${name}_${version#*:}_${PKG_ARCH:-$arch}.deb" >/dev/null
}

# --- driver side (Debian non-free names) -------------------------------------------------------
smi="$work/tree-smi"
mkdir -p "$smi/usr/bin" "$smi/usr/share/nvidia-standin"
cp "$fixtures/$fixture".* "$smi/usr/share/nvidia-standin/"
cat >"$smi/usr/bin/nvidia-smi" <<EOF
#!/bin/sh
# STAND-IN nvidia-smi (gpulab.provision tests): prints the recorded output of a real
# nvidia-smi on a $fixture host. It knows nothing about this machine.
d=/usr/share/nvidia-standin
case "\$*" in
  *--query-gpu=*) exec cat "\$d/$fixture.query-gpu.csv" ;;
  *-q*) exec cat "\$d/$fixture.q.txt" ;;
  "") exec cat "\$d/$fixture.banner.txt" ;;
  *) echo "nvidia-smi stand-in: unsupported arguments: \$*" >&2; exit 2 ;;
esac
EOF
chmod 0755 "$smi/usr/bin/nvidia-smi"

persist="$work/tree-persistenced"
mkdir -p "$persist/lib/systemd/system" "$persist/usr/bin"
printf '#!/bin/sh\n# STAND-IN nvidia-persistenced\nexec sleep infinity\n' >"$persist/usr/bin/nvidia-persistenced"
chmod 0755 "$persist/usr/bin/nvidia-persistenced"
cat >"$persist/lib/systemd/system/nvidia-persistenced.service" <<'EOF'
[Unit]
Description=STAND-IN NVIDIA Persistence Daemon (gpulab.provision tests)

[Service]
ExecStart=/usr/bin/nvidia-persistenced

[Install]
WantedBy=multi-user.target
EOF

# dkms: models what Debian's real DKMS did in real-debian/RESULT.md: the nvidia module counts as
# built ("installed") for a kernel only when that kernel's headers are installed, and "added"
# (source registered, nothing built, no error) otherwise.
dkmstree="$work/tree-dkms"
mkdir -p "$dkmstree/usr/sbin"
cat >"$dkmstree/usr/sbin/dkms" <<EOF
#!/bin/sh
# STAND-IN dkms (gpulab.provision tests): 'status [-k KERNEL]' only; builds nothing.
[ "\$1" = status ] || { echo "dkms stand-in: only 'status' is supported" >&2; exit 2; }
kernels=\$(ls /usr/src | sed -n 's/^linux-headers-//p')
[ "\$2" = -k ] && kernels=\$3
# Debian registers /usr/src/nvidia-current-<v> (PACKAGE_NAME nvidia-current), Ubuntu /usr/src/nvidia-<v> (nvidia).
for src in /usr/src/nvidia-*; do
  [ -f "\$src/dkms.conf" ] || continue
  n=\$(sed -n 's/^PACKAGE_NAME="\\(.*\\)"/\\1/p' "\$src/dkms.conf")
  v=\$(sed -n 's/^PACKAGE_VERSION="\\(.*\\)"/\\1/p' "\$src/dkms.conf")
  built=""
  for k in \$kernels; do
    if [ -d "/usr/src/linux-headers-\$k" ]; then echo "\$n/\$v, \$k, $arch: installed"; built=1; fi
  done
  [ -n "\$built" ] || echo "\$n/\$v: added"
done
EOF
chmod 0755 "$dkmstree/usr/sbin/dkms"
# The epoch keeps apt from preferring the real dkms of the Debian archive the test host also has.
[[ $os_id == ubuntu ]] || mkdir -p "$out/debian/pool" "$out/debian/dists/$codename/non-free/binary-$arch"
[[ $os_id == ubuntu ]] || pkg dkms 1:3.0.10-8+standin1 "$out/debian/pool" "" "$dkmstree"

headers="$work/tree-headers"
mkdir -p "$headers/usr/src/linux-headers-$kernel"
echo "# STAND-IN headers of $kernel (gpulab.provision tests)" >"$headers/usr/src/linux-headers-$kernel/Makefile"

# Ubuntu's layout of one branch (Ubuntu's archive and NVIDIA's Ubuntu repository name them alike):
#   ubuntu_branch DEST VERSION SUFFIX SOURCE  (SUFFIX "-server" for Ubuntu's -server flavour, "" for NVIDIA's)
# nvidia-driver-* Depends on its parts at the same version, as Ubuntu's and NVIDIA's packages do;
# nvidia-compute-utils-* carries nvidia-persistenced and its unit; nvidia-dkms-* registers
# /usr/src/nvidia-<version> (DKMS name "nvidia").
ubuntu_branch() {
  local dest=$1 v=$2 sfx=$3 src=$4 b=${driver_version%%.*} flavour ksrc
  local B="$b$sfx"
  export PKG_SOURCE=$src
  pkg "libnvidia-compute-$B" "$v" "$dest" ""
  pkg "nvidia-utils-$B" "$v" "$dest" "libnvidia-compute-$B (= $v)" "$smi"
  pkg "nvidia-compute-utils-$B" "$v" "$dest" "libnvidia-compute-$B (= $v)" "$persist"
  pkg "nvidia-kernel-common-$B" "$v" "$dest" ""
  for flavour in "" -open; do
    ksrc="$work/tree-ubuntu-ksrc$flavour-$v"
    mkdir -p "$ksrc/usr/src/nvidia-$driver_version"
    printf 'PACKAGE_NAME="nvidia"\nPACKAGE_VERSION="%s"\n' "$driver_version" >"$ksrc/usr/src/nvidia-$driver_version/dkms.conf"
    pkg "nvidia-dkms-$B$flavour" "$v" "$dest" "dkms, nvidia-kernel-common-$B (= $v)" "$ksrc"
    pkg "nvidia-driver-$B$flavour" "$v" "$dest" \
      "nvidia-dkms-$B$flavour (= $v), nvidia-utils-$B (= $v), libnvidia-compute-$B (= $v), nvidia-compute-utils-$B (= $v), nvidia-kernel-common-$B (= $v)"
  done
  unset PKG_SOURCE
}

if [[ $os_id == ubuntu ]]; then
  # Ubuntu's archive: restricted, two revisions of the recorded version in Ubuntu's format.
  u="$out/ubuntu/pool/restricted"
  mkdir -p "$u" "$out/ubuntu/dists/$codename/restricted/binary-$arch"
  for uv in "$driver_version-0ubuntu0.$os_version.1" "$driver_version-0ubuntu0.$os_version.2"; do
    ubuntu_branch "$u" "$uv" -server "nvidia-graphics-drivers-${driver_version%%.*}-server"
  done
  pkg dkms 1:3.0.10-8+standin1 "$u" "" "$dkmstree"
  pkg "linux-headers-$kernel" 1.0-1 "$u" "" "$headers"
  # NVIDIA's CUDA repository for this release: flat, repos/ubuntu<NNNN>/<arch>/ (x86_64, sbsa).
  cuda_arch=$(uname -m); [[ $cuda_arch == aarch64 ]] && cuda_arch=sbsa
  c="$out/cuda/repos/ubuntu${os_version//./}/$cuda_arch"
  mkdir -p "$c"
  for cv in "$driver_version-0ubuntu1" "$driver_version-1ubuntu1"; do
    ubuntu_branch "$c" "$cv" "" "nvidia-graphics-drivers-${driver_version%%.*}"
    # The metapackages NVIDIA documents (cuda-drivers-<branch>, nvidia-open-<branch>) take the newest
    # driver of the branch (>=), as NVIDIA's do: pinning the metapackage alone does not hold the driver.
    PKG_SOURCE="cuda-drivers-${driver_version%%.*}" pkg "cuda-drivers-${driver_version%%.*}" "$cv" "$c" \
      "nvidia-driver-${driver_version%%.*} (>= $driver_version)"
    PKG_SOURCE="nvidia-open-${driver_version%%.*}" pkg "nvidia-open-${driver_version%%.*}" "$cv" "$c" \
      "nvidia-driver-${driver_version%%.*}-open (>= $driver_version)"
  done
fi

# Two Debian revisions of the recorded driver version, so a version pin has something to hold back.
d="$out/debian/pool"
[[ $os_id == ubuntu ]] || for dv in "$driver_version-1" "$driver_version-2"; do
  pkg libnvidia-ml1 "$dv" "$d" ""
  pkg libcuda1 "$dv" "$d" "libnvidia-ml1 (= $dv)"
  pkg nvidia-smi "$dv" "$d" "libnvidia-ml1 (= $dv)" "$smi"
  ksrc="$work/tree-ksrc-$dv"
  mkdir -p "$ksrc/usr/src/nvidia-current-$driver_version"
  printf 'PACKAGE_NAME="nvidia-current"\nPACKAGE_VERSION="%s"\n' "$driver_version" \
    >"$ksrc/usr/src/nvidia-current-$driver_version/dkms.conf"
  pkg nvidia-kernel-dkms "$dv" "$d" "dkms" "$ksrc"
  pkg nvidia-driver "$dv" "$d" "nvidia-kernel-dkms (= $dv), libcuda1 (= $dv)"
  pkg nvidia-persistenced "$dv" "$d" "" "$persist"
done
[[ $os_id == ubuntu ]] || pkg "linux-headers-$kernel" 1.0-1 "$d" "" "$headers"

# --- container toolkit side (libnvidia-container names) ----------------------------------------
for v in "${toolkit_versions[@]}"; do
  base="$work/tree-base-$v"; hook="$work/tree-hook-$v"; cli="$work/tree-cli-$v"
  mkdir -p "$base/usr/bin" "$hook/usr/bin" "$cli/usr/bin"
  cat >"$base/usr/bin/nvidia-container-runtime" <<'EOF'
#!/bin/sh
# STAND-IN nvidia-container-runtime: the real one adds the GPU hook to the OCI spec and then runs
# runc; this one only runs runc, which is enough for dockerd to accept and use the runtime.
exec runc "$@"
EOF
  cat >"$base/usr/bin/nvidia-ctk" <<EOF
#!/bin/sh
# STAND-IN nvidia-ctk $v: --version, and cdi generate --output=FILE (a spec built from the fixture)
case "\$1" in
  --version|-v) echo "NVIDIA Container Toolkit CLI version $v (stand-in)"; exit 0 ;;
  cdi)
    [ "\$2" = generate ] || { echo "nvidia-ctk stand-in: only 'cdi generate'" >&2; exit 2; }
    out=/dev/stdout
    for a in "\$@"; do case "\$a" in --output=*) out=\${a#--output=} ;; esac; done
    {
      echo "cdiVersion: 0.5.0"
      echo "kind: nvidia.com/gpu"
      echo "devices:"
      nvidia-smi --query-gpu=index,name --format=csv,noheader | while IFS=, read -r i n; do
        echo "- name: \"\$i\"   # \$n"
        echo "  containerEdits:"
        echo "    deviceNodes:"
        echo "    - path: /dev/nvidia\$i"
      done
      echo "containerEdits:"
      echo "  deviceNodes:"
      echo "  - path: /dev/nvidiactl"
    } >"\$out" ;;
  *) echo "nvidia-ctk stand-in: unsupported arguments: \$*" >&2; exit 2 ;;
esac
EOF
  # dockerd registers its "gpu" device driver only when this hook is on PATH at start.
  cat >"$hook/usr/bin/nvidia-container-runtime-hook" <<'EOF'
#!/bin/sh
# STAND-IN OCI prestart hook: the real one mounts the driver into the container; this one does
# nothing, so `docker run --gpus all` works but sees only what the image itself carries.
cat >/dev/null
exit 0
EOF
  printf '#!/bin/sh\necho "STAND-IN nvidia-container-cli %s"\n' "$v" >"$cli/usr/bin/nvidia-container-cli"
  chmod 0755 "$base/usr/bin/"* "$hook/usr/bin/"* "$cli/usr/bin/"*
  t="$out/toolkit"
  pkg libnvidia-container1 "$v" "$t" ""
  pkg libnvidia-container-tools "$v" "$t" "libnvidia-container1 (= $v)" "$cli"
  pkg nvidia-container-toolkit-base "$v" "$t" "" "$base"
  pkg nvidia-container-toolkit "$v" "$t" "nvidia-container-toolkit-base (= $v), libnvidia-container-tools (= $v)" "$hook"
done

# --- indexes, Release files, signatures ------------------------------------------------------
# suite_repo ROOT COMPONENT ORIGIN: a suite layout under ROOT/dists/$codename
suite_repo() {
  local root=$1 comp=$2 origin=$3
  (cd "$root" && apt-ftparchive packages pool >"dists/$codename/$comp/binary-$arch/Packages")
  gzip -9nk "$root/dists/$codename/$comp/binary-$arch/Packages"
  apt-ftparchive -o APT::FTPArchive::Release::Origin="$origin" -o APT::FTPArchive::Release::Suite="$codename" \
    -o APT::FTPArchive::Release::Codename="$codename" -o APT::FTPArchive::Release::Components="$comp" \
    -o APT::FTPArchive::Release::Architectures="$arch" release "$root/dists/$codename" >"$work/Release"
  mv "$work/Release" "$root/dists/$codename/Release"
}
# flat_repo DIR: a flat ("/") repository, NVIDIA's layout
flat_repo() {
  (cd "$1" && apt-ftparchive packages . >Packages && gzip -9nk Packages \
    && apt-ftparchive -o APT::FTPArchive::Release::Origin=gpulab-standin release . >"$work/Release" \
    && mv "$work/Release" Release)
}
signed=("$out/toolkit")
if [[ $os_id == ubuntu ]]; then
  suite_repo "$out/ubuntu" restricted Ubuntu
  signed+=("$out/ubuntu/dists/$codename")
else
  suite_repo "$out/debian" non-free gpulab-standin
  signed+=("$out/debian/dists/$codename")
fi

export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "gpulab stand-in repo <standin@gpulab.invalid>" ed25519 sign 1d
gpg --batch --quiet --armor --export >"$out/key.asc"
if [[ $os_id == ubuntu ]]; then
  # cuda-keyring, as NVIDIA's: the repository's keyring and a one-line source naming it. Built after
  # the key exists, then indexed with the rest of the flat repository.
  kr="$work/tree-cuda-keyring"
  mkdir -p "$kr/usr/share/keyrings" "$kr/etc/apt/sources.list.d"
  gpg --batch --quiet --export >"$kr/usr/share/keyrings/cuda-archive-keyring.gpg"
  echo "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] ${CUDA_REPO_URL:-http://127.0.4.1:8081/cuda/repos/ubuntu${os_version//./}/$cuda_arch}/ /" \
    >"$kr/etc/apt/sources.list.d/cuda-ubuntu${os_version//./}-$cuda_arch.list"
  PKG_ARCH=all pkg cuda-keyring 1.1-1 "$c" "" "$kr"
  cp "$out/key.asc" "$c/3bf863cc.pub"
  flat_repo "$c"
  signed+=("$c")
fi
flat_repo "$out/toolkit"
for rel in "${signed[@]}"; do
  gpg --batch --quiet --yes --clearsign -o "$rel/InRelease" "$rel/Release"
  gpg --batch --quiet --yes -abs -o "$rel/Release.gpg" "$rel/Release"
done
# The secret key dies with $work (trap above); only key.asc stays.
echo "stand-in repositories in $out ($os_id $codename: driver $driver_version, toolkit ${toolkit_versions[*]}, kernel $kernel)"
