// Long-input references from Hugging Face tokenizers (the Rust library through N-API, npm package
// `tokenizers`, installed by `make tokref-deps`): the goldens of tokenize's long-input test and
// the Rust side of its long-input benchmark.
//
//   node tools/reference/toklong.js goldens TOKENIZER_JSON OUT.json
//       Encodes every case of CASES (no special tokens added) and writes OUT: the cases with, for
//       each, the text's length in bytes, the number of ids, the first ids and the SHA-256 of the
//       ids as little-endian uint32 (the ids of 1 MB texts are too many to commit).
//   node tools/reference/toklong.js bench TOKENIZER_JSON [REPS]
//       Times one encode call on each benchmark text (1 MB of "a", of spaces, of "!", ...) and
//       prints the median and the minimum of REPS runs (default 7) after one warm-up.
//
// A case's text is the concatenation of its parts: {s, n} is s repeated n times; {rand, n, seed}
// is n code points drawn from the alphabet rand with xorshift32 (tokenize/long_test.go builds
// the same texts from the committed file, so the case list lives here only).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { load } = require('./tokref.js');

const KB100 = 100000;
const MB = 1000000;
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const MIXED = "abcXYZ019 \n\t\r!?.,'\"<|>-_é日本🙂\u0301ſ";

// long: the case needs a 1 MB text (the test skips it under -short). bench: timed by `bench`.
const CASES = [
  { name: 'a', parts: [{ s: 'a', n: KB100 }] },
  { name: 'spaces', parts: [{ s: ' ', n: KB100 }] },
  { name: 'bang', parts: [{ s: '!', n: KB100 }] },
  { name: 'spaces-then-word', parts: [{ s: ' ', n: KB100 }, { s: 'word', n: 1 }] },
  { name: 'newlines', parts: [{ s: '\n', n: KB100 }] },
  { name: 'crlf-tabs', parts: [{ s: ' \r\n\t', n: 25000 }, { s: 'x', n: 1 }] },
  { name: 'digits', parts: [{ s: '0123456789', n: 10000 }] },
  { name: 'ab', parts: [{ s: 'ab', n: 50000 }] },
  { name: 'space-bang', parts: [{ s: ' !', n: 50000 }] },
  { name: 'apostrophes', parts: [{ s: "'", n: KB100 }] },
  { name: 'contractions', parts: [{ s: "'s'LL", n: 20000 }] },
  { name: 'word-lower', parts: [{ rand: LOWER, n: KB100, seed: 1 }] },
  { name: 'word-mixed-case', parts: [{ rand: LOWER + LOWER.toUpperCase(), n: KB100, seed: 2 }] },
  { name: 'words', parts: [{ rand: LOWER + '    ', n: KB100, seed: 3 }] },
  { name: 'e-acute', parts: [{ s: 'é', n: 50000 }] },
  { name: 'cjk', parts: [{ rand: '日本語中文字漢', n: 33333, seed: 4 }] },
  { name: 'emoji', parts: [{ s: '🙂', n: 25000 }] },
  { name: 'combining', parts: [{ s: 'e\u0301', n: 33333 }] },
  { name: 'special-prefix', parts: [{ s: '<|', n: 50000 }] },
  { name: 'special-tokens', parts: [{ s: '<|begin_of_text|>a', n: 5555 }] },
  { name: 'mixed', parts: [{ rand: MIXED, n: 50000, seed: 5 }] },
  { name: 'a-1MB', long: true, bench: true, parts: [{ s: 'a', n: MB }] },
  { name: 'spaces-1MB', long: true, bench: true, parts: [{ s: ' ', n: MB }] },
  { name: 'bang-1MB', long: true, bench: true, parts: [{ s: '!', n: MB }] },
  { name: 'word-lower-1MB', long: true, bench: true, parts: [{ rand: LOWER, n: MB, seed: 6 }] },
  { name: 'mixed-1MB', long: true, bench: true, parts: [{ rand: MIXED, n: 500000, seed: 7 }] },
];

function xorshift32(x) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

function partText(p) {
  if (p.s !== undefined) return p.s.repeat(p.n);
  const alphabet = Array.from(p.rand);
  const out = new Array(p.n);
  let x = p.seed >>> 0;
  for (let i = 0; i < p.n; i++) {
    x = xorshift32(x);
    out[i] = alphabet[x % alphabet.length];
  }
  return out.join('');
}

function caseText(c) {
  return c.parts.map(partText).join('');
}

function idsDigest(ids) {
  const buf = Buffer.alloc(4 * ids.length);
  ids.forEach((id, i) => buf.writeUInt32LE(id, 4 * i));
  return crypto.createHash('sha256').update(buf).digest('hex');
}

const opts = { addSpecialTokens: false };

async function goldens(tok, out) {
  const version = require(path.join(path.dirname(require.resolve('tokenizers', {
    paths: [path.join(__dirname, '..', '..', '.cache', 'node-tokenizers', 'node_modules')],
  })), 'package.json')).version;
  const cases = [];
  for (const c of CASES) {
    const text = caseText(c);
    const ids = Array.from((await tok.encode(text, null, opts)).getIds());
    cases.push({
      ...c,
      bytes: Buffer.byteLength(text, 'utf8'),
      count: ids.length,
      head: ids.slice(0, 16),
      sha256: idsDigest(ids),
    });
  }
  const doc = { reference: `Hugging Face tokenizers ${version} (npm, Rust through N-API)`, cases };
  fs.writeFileSync(out, JSON.stringify(doc, null, 1) + '\n');
}

async function bench(tok, reps) {
  for (const c of CASES.filter((c) => c.bench)) {
    const text = caseText(c);
    await tok.encode(text, null, opts); // warm-up
    const secs = [];
    for (let r = 0; r < reps; r++) {
      const t0 = process.hrtime.bigint();
      await tok.encode(text, null, opts);
      secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    secs.sort((a, b) => a - b);
    const median = secs[Math.floor(secs.length / 2)];
    console.log(`rust ${c.name}\t${Buffer.byteLength(text)} bytes\tmedian ${(median * 1e3).toFixed(1)} ms\tmin ${(secs[0] * 1e3).toFixed(1)} ms\t(${reps} runs)`);
  }
}

async function main() {
  const [, , mode, tokFile, arg] = process.argv;
  if (!tokFile || (mode === 'goldens' && !arg) || (mode !== 'goldens' && mode !== 'bench')) {
    console.error('usage: toklong.js goldens TOKENIZER OUT.json | toklong.js bench TOKENIZER [REPS]');
    process.exit(2);
  }
  const tok = load(tokFile);
  if (mode === 'goldens') await goldens(tok, arg);
  else await bench(tok, arg ? parseInt(arg, 10) : 7);
}

main().catch((e) => { console.error(e); process.exit(1); });
