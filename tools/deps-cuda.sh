#!/usr/bin/env bash
# make deps-cuda: ONNX Runtime with the CUDA execution provider, from the npm registry only,
# every file verified by sha256, into .cache/onnxruntime-cuda/ (where --device cuda finds it).
# Idempotent: a file whose hash already matches is kept. Fetching needs no GPU; running needs
# the NVIDIA driver, CUDA 13 (cuBLAS, cuRAND, the runtime) and cuDNN 9 on the library path.
#
#   libonnxruntime.so.1                 ONNX Runtime 1.29.0's core from onnxruntime-node, a build
#                                       with the CUDA provider interface (its CPU provider works
#                                       alone too)
#   libonnxruntime_providers_cuda.so    the official 1.29.0 CUDA 13 provider and its bridge,
#   libonnxruntime_providers_shared.so  repackaged in com.github.asus4.onnxruntime.linux-x64-gpu
#
# The core and the providers must be the same ONNX Runtime version (the provider calls into
# the core through a table whose layout changes between versions), hence 1.29.0 here while the
# CPU build of `make deps` is 1.30.0.
set -euo pipefail
cd "$(dirname "$0")/.."

CORE_PKG=onnxruntime-node@1.29.0
CORE_TGZ=onnxruntime-node-1.29.0.tgz
CORE_TGZ_SHA=cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037
GPU_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
GPU_TGZ=com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz
GPU_TGZ_SHA=2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412
# file in .cache/onnxruntime-cuda, package tarball, path inside it, sha256
FILES=(
	"libonnxruntime.so.1 $CORE_TGZ package/bin/napi-v6/linux/x64/libonnxruntime.so.1 89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d"
	"libonnxruntime_providers_cuda.so $GPU_TGZ package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so 56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037"
	"libonnxruntime_providers_shared.so $GPU_TGZ package/Plugins/Linux/x64/libonnxruntime_providers_shared.so c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772"
)
OUT=.cache/onnxruntime-cuda

hash() { sha256sum "$1" | cut -d' ' -f1; }
have() { [ -f "$1" ] && [ "$(hash "$1")" = "$2" ]; }
check() {
	local got
	got=$(hash "$1")
	if [ "$got" != "$2" ]; then
		echo "deps-cuda: $1: sha256 $got, want $2" >&2
		exit 1
	fi
}
# pack PKG TGZ SHA: the package's tarball in .cache/npm (npm pack runs no install scripts).
pack() {
	have ".cache/npm/$2" "$3" && return 0
	(cd .cache/npm && npm pack --silent "$1" >/dev/null)
	check ".cache/npm/$2" "$3"
}

mkdir -p .cache/npm "$OUT"
for entry in "${FILES[@]}"; do
	read -r name tgz path sum <<<"$entry"
	have "$OUT/$name" "$sum" && continue
	case $tgz in
	"$CORE_TGZ") pack "$CORE_PKG" "$CORE_TGZ" "$CORE_TGZ_SHA" ;;
	"$GPU_TGZ") pack "$GPU_PKG" "$GPU_TGZ" "$GPU_TGZ_SHA" ;;
	esac
	tmp=$(mktemp -d "$OUT/.extract-XXXXXX")
	tar --no-same-owner -xzf ".cache/npm/$tgz" -C "$tmp" "$path"
	check "$tmp/$path" "$sum"
	chmod 0755 "$tmp/$path"
	mv "$tmp/$path" "$OUT/$name"
	rm -rf "$tmp"
	echo "deps-cuda: $OUT/$name"
done
# The tarballs are 107 and 171 MiB: keep the extracted files only.
rm -f ".cache/npm/$CORE_TGZ" ".cache/npm/$GPU_TGZ"
