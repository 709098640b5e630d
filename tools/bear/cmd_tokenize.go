package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/bearrec/bear/tokenize"
)

func init() {
	register(&command{
		name:    "tokenize",
		summary: "encode text lines to Llama-3 token ids (or decode ids back)",
		run: func(args []string) error {
			return tokenizeMain(args, os.Stdin, os.Stdout)
		},
	})
}

// tokenizeMain reads one text per line (with --json, one JSON string per line) and writes one
// JSON array of ids per line, in order. With --decode it reads JSON arrays of ids and writes
// the texts (as JSON strings with --json).
func tokenizeMain(args []string, in io.Reader, out io.Writer) error {
	fs := newFlagSet("tokenize", "[--tokenizer FILE] [--json] [--special] [--pad] [--decode] < lines")
	fs.SetOutput(os.Stderr)
	tokPath := fs.String("tokenizer", "", "Hugging Face tokenizer.json (default: $BEAR_TOKENIZER, then the one make deps fetched)")
	asJSON := fs.Bool("json", false, "each input line (or, with --decode, each output line) is a JSON string, for texts with newlines")
	special := fs.Bool("special", false, "add the post-processor's special tokens (BOS); with --decode, drop them from the front")
	pad := fs.Bool("pad", false, "add the official code's <pad> special token (id 128256) before encoding")
	decode := fs.Bool("decode", false, "read JSON arrays of ids and write the texts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := findTokenizer(*tokPath, "")
	if err != nil {
		return err
	}
	tok, err := tokenize.Load(path)
	if err != nil {
		return err
	}
	if *pad {
		tok.AddSpecial(tokenize.PadToken)
	}
	r := bufio.NewReaderSize(in, 1<<16)
	w := bufio.NewWriterSize(out, 1<<16)
	prefix := tok.PostProcessorPrefix()
	var buf []byte
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		if err != nil && err != io.EOF {
			return err
		}
		line = strings.TrimSuffix(line, "\n")
		if *decode {
			var ids []int
			if err := json.Unmarshal([]byte(line), &ids); err != nil {
				return fmt.Errorf("line %d: want a JSON array of ids: %w", lineNo, err)
			}
			if *special && len(ids) >= len(prefix) && equalInts(ids[:len(prefix)], prefix) {
				ids = ids[len(prefix):]
			}
			text, err := tok.Decode(ids)
			if err != nil {
				return fmt.Errorf("line %d: %w", lineNo, err)
			}
			if *asJSON {
				b, _ := json.Marshal(text)
				w.Write(b)
			} else {
				w.WriteString(text)
			}
			w.WriteByte('\n')
			continue
		}
		text := line
		if *asJSON {
			if err := json.Unmarshal([]byte(line), &text); err != nil {
				return fmt.Errorf("line %d: want a JSON string: %w", lineNo, err)
			}
		}
		var ids []int
		if *special {
			ids = tok.EncodeSpecial(text)
		} else {
			ids = tok.Encode(text)
		}
		buf = append(buf[:0], '[')
		for i, id := range ids {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		buf = append(buf, ']', '\n')
		w.Write(buf)
	}
	return w.Flush()
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
