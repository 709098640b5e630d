// Reference token ids from Hugging Face tokenizers (the Rust library through N-API, npm package
// `tokenizers`, installed by `make tokref-deps` from tools/reference/tokenizers/package.json).
//
//   node tools/reference/tokref.js encode TOKENIZER_JSON IN.jsonl OUT.jsonl
//       IN: one JSON object per line {"cat": ..., "text": ..., "special": bool}; OUT: the same
//       objects, in order, with "ids" added (special: add_special_tokens, i.e. the BOS template).
//   node tools/reference/tokref.js bench TOKENIZER_JSON IN.jsonl
//       Times encodeBatch (all texts of a kind in one call) and one encode call per text, without
//       special tokens, for the titles (categories title/*) and the prompts (train/*, infer/*)
//       of IN (.jsonl or .jsonl.gz, e.g. testdata/tokenize/golden.jsonl.gz); prints texts/s.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const zlib = require('zlib');

function load(file) {
  const dirs = [
    process.env.TOKREF_NODE_MODULES,
    path.join(__dirname, '..', '..', '.cache', 'node-tokenizers', 'node_modules'),
  ].filter(Boolean);
  for (const d of dirs) {
    try {
      return require(path.join(d, 'tokenizers')).Tokenizer.fromFile(file);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  throw new Error('npm package tokenizers not found: run `make tokref-deps`');
}

async function readRecords(file) {
  const out = [];
  let input = fs.createReadStream(file);
  if (file.endsWith('.gz')) input = input.pipe(zlib.createGunzip());
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.length > 0) out.push(JSON.parse(line));
  }
  return out;
}

async function encode(tok, records, out) {
  const chunk = 2048;
  const fd = fs.openSync(out, 'w');
  for (let i = 0; i < records.length; i += chunk) {
    const part = records.slice(i, i + chunk);
    const ids = new Array(part.length);
    for (const special of [false, true]) {
      const idx = [];
      part.forEach((r, j) => { if (!!r.special === special) idx.push(j); });
      if (idx.length === 0) continue;
      const encs = await tok.encodeBatch(idx.map((j) => part[j].text), { addSpecialTokens: special });
      idx.forEach((j, k) => { ids[j] = encs[k].getIds(); });
    }
    const lines = part.map((r, j) => JSON.stringify({ ...r, ids: Array.from(ids[j]) })).join('\n') + '\n';
    fs.writeSync(fd, lines);
  }
  fs.closeSync(fd);
}

async function bench(tok, records) {
  const byCat = new Map();
  for (const r of records) {
    const head = r.cat.split('/')[0];
    const kind = head === 'title' ? 'titles' : head === 'train' || head === 'infer' ? 'prompts' : null;
    if (!kind) continue;
    if (!byCat.has(kind)) byCat.set(kind, []);
    byCat.get(kind).push(r.text);
  }
  const opts = { addSpecialTokens: false };
  for (const [cat, texts] of byCat) {
    await tok.encodeBatch(texts.slice(0, 100), opts); // warm-up
    let best = Infinity;
    for (let rep = 0; rep < 5; rep++) {
      const t0 = process.hrtime.bigint();
      await tok.encodeBatch(texts, opts);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const t1 = process.hrtime.bigint();
    for (const s of texts) await tok.encode(s, null, opts);
    const single = Number(process.hrtime.bigint() - t1) / 1e9;
    console.log(`${cat}\t${texts.length} texts\tbatched ${(texts.length / best).toFixed(0)} texts/s\tone call per text ${(texts.length / single).toFixed(0)} texts/s`);
  }
}

async function main() {
  const [, , mode, tokFile, inFile, outFile] = process.argv;
  if (!mode || !tokFile || !inFile || (mode === 'encode' && !outFile)) {
    console.error('usage: tokref.js encode TOKENIZER IN.jsonl OUT.jsonl | tokref.js bench TOKENIZER IN.jsonl');
    process.exit(2);
  }
  const tok = load(tokFile);
  const records = await readRecords(inFile);
  if (mode === 'encode') await encode(tok, records, outFile);
  else if (mode === 'bench') await bench(tok, records);
  else throw new Error(`unknown mode ${mode}`);
}

module.exports = { load };

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
