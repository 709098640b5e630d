package tokenize

import (
	"fmt"
	"os"
)

// Split is one split file of a dataset with the tokenizer and the catalogue's item set: what a
// training or an evaluation job starts from.
type Split struct {
	*Dataset
	Path   string // the split file
	SHA256 string // of the split file's bytes
	Rows   []Row
	Tok    *Tokenizer
	Items  *ItemSet
}

// LoadSplit opens the dataset folder dir (see OpenDataset), reads the split (see SplitPath; an
// empty split is an error), loads tokenizer.json and tokenises the catalogue's titles.
func LoadSplit(dir, dataset, split, tokenizer string) (*Split, error) {
	ds, err := OpenDataset(dir, dataset)
	if err != nil {
		return nil, err
	}
	path, rows, err := ds.ReadSplit(split)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path) // read again for its hash: split files are small
	if err != nil {
		return nil, err
	}
	tok, err := Load(tokenizer)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	items, err := NewItemSet(tok, ds.Catalogue)
	if err != nil {
		return nil, err
	}
	return &Split{Dataset: ds, Path: path, SHA256: sha256Hex(data), Rows: rows, Tok: tok, Items: items}, nil
}
