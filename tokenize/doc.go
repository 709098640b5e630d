// Package tokenize turns Amazon recommendation data into Llama-3 token ids: the Llama-3.2
// tokenizer, the official BEAR prompt templates, the catalogue and split files, the item trie,
// and tokenised training examples. It imports nothing else of the project.
//
// # Tokenizer
//
// Load reads a Hugging Face tokenizer.json (only the Llama-3 configuration is accepted) and
// returns a Tokenizer whose ids equal those of Hugging Face tokenizers for every text, special
// tokens written in the text included; Decode gives the text back, as HF's decode with
// skip_special_tokens=False. Encode adds nothing; EncodeSpecial applies the post-processor's
// template (BOS + text). Encoding is O(n log n) in the text's length. A Tokenizer is safe for
// concurrent use; an Encoder (one per goroutine) encodes without allocating. make tokcheck
// compares the ids with the Rust library's; testdata/tokenize holds the golden sample.
//
// # Prompts
//
// DatasetPrompt gives the official per-dataset instruction and history strings; Prompt.Train
// and Prompt.Inference are the official training and inference templates, verbatim (they
// differ by one space after "request."). Tokenizer.InferenceIDs is BOS + the inference prompt.
//
// # Files
//
// ReadCatalogue reads id2name4Rec.json (item id to title); ReadSplit reads a train_*.csv or
// test_*.csv split, columns found by header name. As the official data code does, ids missing
// from the catalogue are dropped (Row.DroppedIDs counts them), then the last id is the target
// and the ones before it the history. Bad input is an error naming the file and line, never a
// silent default. LoadSplit opens a dataset folder, reads one split and tokenises the
// catalogue: what a training or evaluation job starts from.
//
// # Items and the trie
//
// NewItemSet tokenises every title as the official inference does, in context: the ids of
// ### Response:\n"TITLE" without the separator's, then EOS. ItemSet.Trie is the trie of these
// sequences (beam search), ItemSet.StandaloneTrie that of "TITLE" + EOS (training, as the
// official script builds it). Trie.Allowed returns the sorted tokens allowed after a prefix, or
// [EOS] where none is; Trie.Items maps a complete path to its item ids (duplicated titles share
// a path). A Trie is read-only and safe for concurrent use; its slices must not be modified.
//
// TrainExample builds a training example as the official script does: BOS + training prompt +
// EOS, untruncated, with where its supervision starts (Supervision) by both official rules.
package tokenize
