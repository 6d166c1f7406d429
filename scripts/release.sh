#!/usr/bin/env bash
# Release step: builds the release binaries for the platform this machine builds for, packs them
# with LICENSE, the completions and the man pages, writes the archive's sha256, and renders the krew
# manifest from deploy/krew/servicecidr.yaml.in for exactly the archives built.
#
#   scripts/release.sh [OUT]      OUT defaults to target/dist
#
# Writes OUT/kubectl-servicecidr_vX.Y.Z_<os>_<arch>.tar.gz, its .sha256, and OUT/servicecidr.yaml;
# on Linux also the exporter's image (deploy/image/Containerfile, built with podman) as the OCI
# archive OUT/kubectl-servicecidr_vX.Y.Z_linux_<arch>.oci.tar and its .sha256, tagged with the
# reference deploy/monitoring/exporter.yaml names (IMAGE, default ghcr.io/OWNER/NAME from the
# repository in Cargo.toml). Prints the archive's path on its last line. The archive is reproducible: sorted names, owner 0,
# mtimes from SOURCE_DATE_EPOCH (default: the last commit's time), gzip without a name or time.
#
# The image needs podman (Debian: apt-get install podman runc); where podman's defaults do not run
# here, CONTAINERS_CONF points it at settings that do (docs/development.md).
#
# RELEASE_PROFILE (default release) picks the cargo profile; tests/release.rs uses dev, which
# reuses the test build instead of a 6-minute LTO build on 2 cores.
#
# Other platforms: build on (or cross-compile for) them with this script; each run adds its own
# archive, and the manifest lists every archive found in OUT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-target/dist}
die() { echo "release: error: $*" >&2; exit 1; }

version=$(cargo pkgid | sed -n 's/.*[#@]\([0-9][^#@]*\)$/\1/p')
[ -n "$version" ] || die "cannot read the version from Cargo.toml"
repository=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$repository" ] || die "no repository in Cargo.toml"
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  x86_64-unknown-linux-gnu) os=linux arch=amd64 ;;
  aarch64-unknown-linux-gnu) os=linux arch=arm64 ;;
  x86_64-apple-darwin) os=darwin arch=amd64 ;;
  aarch64-apple-darwin) os=darwin arch=arm64 ;;
  *) die "no archive name for host $host: add its os/arch here" ;;
esac
tag=v$version
name=kubectl-servicecidr_${tag}_${os}_${arch}

profile=${RELEASE_PROFILE:-release}
echo "release: building $tag for $os/$arch (profile $profile)" >&2
cargo build --profile "$profile" --locked --bins >&2
[ "$profile" = dev ] && profile_dir=debug || profile_dir=$profile
release_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$profile_dir

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
cp "$release_dir/kubectl-servicecidr" "$release_dir/kubectl_complete-servicecidr" LICENSE "$stage/"
cp -r completions man "$stage/"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
archive=$out/$name.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --mode=go-w \
  -C "$stage" -cf - . | gzip -n >"$archive"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")

# One platform entry per archive of this version in OUT.
platforms=$(mktemp)
for a in "$out"/kubectl-servicecidr_"${tag}"_*_*.tar.gz; do
  base=$(basename "$a" .tar.gz)
  a_os=$(echo "$base" | awk -F_ '{print $(NF-1)}')
  a_arch=$(echo "$base" | awk -F_ '{print $NF}')
  cat >>"$platforms" <<EOF
  - selector:
      matchLabels:
        os: $a_os
        arch: $a_arch
    uri: $repository/releases/download/$tag/$base.tar.gz
    sha256: $(sha256sum "$a" | cut -d' ' -f1)
    bin: kubectl-servicecidr
    files:
      - from: kubectl-servicecidr
        to: .
      - from: kubectl_complete-servicecidr
        to: .
      - from: LICENSE
        to: .
EOF
done
python3 - "$platforms" "$tag" deploy/krew/servicecidr.yaml.in "$out/servicecidr.yaml" <<'EOF'
import sys
platforms, tag, template, target = sys.argv[1:]
text = open(template).read()
text = text.replace("@VERSION@", tag).replace("@PLATFORMS@\n", open(platforms).read())
# The template's comment is for this script; the manifest says where it came from.
body = text[text.index("apiVersion:"):]
open(target, "w").write("# Rendered by scripts/release.sh from deploy/krew/servicecidr.yaml.in.\n" + body)
EOF
rm -f "$platforms"

# The exporter's image: the binary and exactly the libraries it links, FROM scratch.
if [ "$os" = linux ]; then
  command -v podman >/dev/null || die "podman builds the exporter's image: apt-get install podman runc"
  owner_repo=${repository#https://github.com/}
  image=${IMAGE:-ghcr.io/$owner_repo}:$tag
  context=$stage/image
  bin=$release_dir/kubectl-servicecidr
  mkdir -p "$context/rootfs/usr/local/bin"
  cp "$bin" "$context/rootfs/usr/local/bin/"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$context/rootfs$(dirname "$lib")"
    cp -L "$lib" "$context/rootfs$lib"
  done
  podman build --quiet --timestamp "$epoch" --tag "$image" \
    --file deploy/image/Containerfile "$context" >&2
  image_archive=kubectl-servicecidr_${tag}_${os}_${arch}.oci.tar
  # Saved as a directory and packed like the archive above, so the same sources give the same
  # bytes (podman's own oci-archive stamps the time of saving).
  podman save --quiet --format oci-dir --output "$stage/oci" "$image"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --mode=go-w \
    -C "$stage/oci" -cf "$out/$image_archive" .
  (cd "$out" && sha256sum "$image_archive" >"$image_archive.sha256")
  echo "release: image $image, $(du -h "$out/$image_archive" | cut -f1) $out/$image_archive" >&2
fi
echo "release: $(du -h "$archive" | cut -f1) $archive" >&2
echo "$archive"
