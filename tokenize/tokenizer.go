package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/model/bpe"
	"github.com/sugarme/tokenizer/pretokenizer"
	"github.com/sugarme/tokenizer/pretrained"
	"github.com/sugarme/tokenizer/processor"
)

// Special token names and ids of the base Llama-3.2 tokenizer and of the official BEAR code.
const (
	BOSToken = "<|begin_of_text|>"
	EOSToken = "<|end_of_text|>"
	// PadToken is the padding token the official code adds (tokenizer.add_special_tokens), which
	// becomes id 128256, one past the tokenizer.json vocabulary. Padding is masked, so its
	// embedding never matters; see Tokenizer.AddSpecial.
	PadToken = "<pad>"

	// ignoreLabel marks label positions that are not supervised (PyTorch's ignore_index).
	ignoreLabel = -100
)

// Tokenizer encodes text to Llama-3 token ids exactly as Hugging Face tokenizers does for the
// Llama-3.2 tokenizer.json, and decodes ids back to text. It is safe for concurrent use once
// built (AddSpecial must not race with encoding).
type Tokenizer struct {
	// vocab maps a token's raw bytes (not the byte-level "Ġ" spelling) to its id.
	vocab map[string]int
	// tokens holds the raw bytes of every id (model vocabulary and added tokens).
	tokens []string
	// byteID is the id of each single byte's token.
	byteID [256]int
	// merges maps a pair of ids to its rank (position in the merges list) and merged id.
	merges map[uint64]merge
	// ignoreMerges: a pre-token that is itself in the vocabulary is emitted as one id.
	ignoreMerges bool

	special    map[string]int // added tokens matched in the text (content -> id)
	specialIDs map[int]bool
	firstByte  [256]bool // first bytes of the added tokens' contents
	maxSpecial int       // length of the longest content
	// specialTrie is the byte trie of the added tokens' contents: (node<<8 | byte) -> child,
	// node 0 the root; specialEnd marks the nodes that end a content. Matching walks at most
	// one content's length per position, and one integer lookup per byte.
	specialTrie map[uint64]uint32
	specialEnd  map[uint32]bool

	bosTemplate []int // ids the post-processor puts before the sequence (single template)
	eos         int
	bos         int
	pad         int    // -1 until AddSpecial(PadToken)
	sha256      string // of the file Load read
}

type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Load reads a Hugging Face tokenizer.json. sugarme/tokenizer parses the file (vocabulary,
// merges, added tokens, decoder and post-processor settings); the encoder itself is ours (see
// fromConfig for why). Only the Llama-3 configuration is accepted: no normalizer, the
// Llama-3 Split regex followed by ByteLevel without regex, a byte-level BPE model and decoder.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	t, err := parseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	t.sha256 = sha256Hex(data)
	return t, nil
}

// SHA256 is the hex SHA-256 of the tokenizer.json Load read ("" for one built otherwise).
func (t *Tokenizer) SHA256() string { return t.sha256 }

func sha256Hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// parseTokenizer builds a Tokenizer from the bytes of a tokenizer.json.
func parseTokenizer(data []byte) (*Tokenizer, error) {
	var cfg *sugar.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, jsonSyntaxError(data, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("the file holds JSON null, not a tokenizer")
	}
	return fromConfig(cfg)
}

// jsonSyntaxError adds the line of a JSON syntax error.
func jsonSyntaxError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("line %d: %w", lineAt(data, int(syn.Offset)), err)
	}
	return err
}

// sugarCall runs one of sugarme's constructors, which type-assert the JSON values without
// checking them, so that a malformed section becomes an error instead of a panic.
func sugarCall[T any](section string, build func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: malformed (%v)", section, r)
		}
	}()
	v, err = build()
	if err != nil {
		err = fmt.Errorf("%s: %w", section, err)
	}
	return v, err
}

// llama3Pattern is the Split pattern of the Llama-3 pre-tokenizer that splitLlama3 implements.
const llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// fromConfig builds the Tokenizer from sugarme's reading of the file. What comes from
// github.com/sugarme/tokenizer and what is ours, and why:
//
//   - sugarme reads the file: sugar.Config holds its sections, pretrained.CreateModel builds the
//     vocabulary and the merge table (pair -> rank, merged id), pretrained.CreateDecoder and
//     CreatePostProcessor read the decoder and the post-processor (whose template gives BOS),
//     and pretokenizer.CharBytes maps vocabulary spellings back to bytes. Its constructors
//     type-assert the JSON without checking, so sugarCall turns their panics into errors naming
//     the section, and the ids are checked here (distinct, in range, an added token never
//     reusing another token's id; FuzzLoadTokenizer holds Load to that).
//   - its encoding pipeline cannot produce Llama-3 ids (tokcheck sugarme compares it with HF),
//     so the encoder is ours. The split: pretrained.FromFile panics on the pattern's lookahead
//     (?!\S), which Go's regexp lacks; splitLlama3 matches the pattern by hand. The byte-level
//     step: sugarme re-splits every piece with the GPT-2 regex although the file says
//     use_regex: false ("### Response:\n" becomes [14711 6075 25 198] instead of
//     [14711 6075 512]); ours does not split, and the byte-level mapping is implicit (see
//     appendPiece). BPE: sugarme breaks ties between equal-rank merges differently from HF and
//     ignores ignore_merges; appendPiece follows HF. Special tokens written in the text: sugarme
//     drops them; ours are matched in the raw text (leftmost, longest, through specialTrie)
//     before pre-tokenisation, as HF's AddedVocabulary does. Speed: sugarme recompiles its
//     regexes per call; an Encoder allocates nothing per call.
func fromConfig(cfg *sugar.Config) (*Tokenizer, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	m, err := sugarCall("model", func() (any, error) { return pretrained.CreateModel(cfg) })
	if err != nil {
		return nil, err
	}
	model, ok := m.(*bpe.BPE)
	if !ok {
		return nil, fmt.Errorf("model: got %T, want BPE", m)
	}
	ignoreMerges, _ := cfg.Model["ignore_merges"].(bool)
	t, err := newModel(model, ignoreMerges, len(cfg.AddedTokens))
	if err != nil {
		return nil, err
	}
	if err := t.addConfigTokens(cfg.AddedTokens, len(*model.Vocab)+len(cfg.AddedTokens)); err != nil {
		return nil, err
	}
	if id, ok := t.special[BOSToken]; ok {
		t.bos = id
	}
	if id, ok := t.special[EOSToken]; ok {
		t.eos = id
	}
	t.bosTemplate, err = singleTemplate(cfg.PostProcessor)
	if err != nil {
		return nil, fmt.Errorf("post-processor: %w", err)
	}
	for _, id := range t.bosTemplate {
		if id < 0 || id >= len(t.tokens) {
			return nil, fmt.Errorf("post-processor: template id %d is not a token id", id)
		}
	}
	return t, nil
}

// checkConfig refuses the settings the encoder does not implement.
func checkConfig(cfg *sugar.Config) error {
	if cfg.Normalizer != nil {
		return fmt.Errorf("normalizer %v is not supported", cfg.Normalizer["type"])
	}
	if err := checkPreTokenizer(cfg.PreTokenizer); err != nil {
		return err
	}
	if typ, _ := cfg.Decoder["type"].(string); typ != "ByteLevel" {
		return fmt.Errorf("decoder %q is not supported (want ByteLevel)", typ)
	}
	if _, err := sugarCall("decoder", func() (any, error) { return pretrained.CreateDecoder(cfg.Decoder) }); err != nil {
		return err
	}
	if typ, _ := cfg.Model["type"].(string); typ != "BPE" {
		return fmt.Errorf("model %q is not supported (want BPE)", typ)
	}
	for _, k := range []string{"continuing_subword_prefix", "end_of_word_suffix", "dropout"} {
		if v, ok := cfg.Model[k]; ok && v != nil {
			return fmt.Errorf("BPE option %s=%v is not supported", k, v)
		}
	}
	if v, _ := cfg.Model["byte_fallback"].(bool); v {
		return fmt.Errorf("BPE byte_fallback is not supported")
	}
	return nil
}

// newModel builds the vocabulary, byte and merge tables from sugarme's BPE. Token ids must be
// distinct and below the number of vocabulary and added tokens (ids are dense: a huge id
// would only size the id table).
func newModel(model *bpe.BPE, ignoreMerges bool, added int) (*Tokenizer, error) {
	t := &Tokenizer{
		vocab:        make(map[string]int, len(*model.Vocab)),
		merges:       make(map[uint64]merge, len(*model.Merges)),
		ignoreMerges: ignoreMerges,
		special:      map[string]int{},
		specialIDs:   map[int]bool{},
		eos:          -1,
		bos:          -1,
		pad:          -1,
	}
	limit := len(*model.Vocab) + added
	t.tokens = make([]string, 0, limit)
	owner := make(map[int]string, len(*model.Vocab))
	for tok, id := range *model.Vocab {
		raw, err := unByteLevel(tok)
		if err != nil {
			return nil, fmt.Errorf("vocabulary token %q: %w", tok, err)
		}
		if id < 0 || id >= limit {
			return nil, fmt.Errorf("vocabulary token %q: id %d is not in [0, %d) (ids count the vocabulary and the added tokens)", tok, id, limit)
		}
		if other, dup := owner[id]; dup {
			return nil, fmt.Errorf("vocabulary tokens %q and %q share id %d", min(tok, other), max(tok, other), id)
		}
		owner[id] = tok
		t.vocab[raw] = id
		for len(t.tokens) <= id {
			t.tokens = append(t.tokens, "")
		}
		t.tokens[id] = raw
	}
	for b := 0; b < 256; b++ {
		id, ok := t.vocab[string([]byte{byte(b)})]
		if !ok {
			return nil, fmt.Errorf("vocabulary lacks the token of byte %#x", b)
		}
		t.byteID[b] = id
	}
	for p, v := range *model.Merges {
		t.merges[pairKey(p.C1, p.C2)] = merge{rank: int32(v.Rank), id: int32(v.NewId)}
	}
	return t, nil
}

// addConfigTokens adds the added tokens of the file. Each needs its own id, outside the
// vocabulary unless it spells that vocabulary token (otherwise decoding the id would be
// ambiguous), and the options the encoder does not implement off.
func (t *Tokenizer) addConfigTokens(list []sugar.TokenConfig, limit int) error {
	for _, a := range list {
		if a.Lstrip || a.Rstrip || a.SingleWord || a.Normalized {
			return fmt.Errorf("added token %q: lstrip/rstrip/single_word/normalized are not supported", a.Content)
		}
		id := int(a.Id)
		switch {
		case a.Id < 0 || a.Id >= int64(limit):
			return fmt.Errorf("added token %q: id %d is not in [0, %d)", a.Content, a.Id, limit)
		case a.Content == "":
			return fmt.Errorf("added token %d has no content", id)
		case t.specialIDs[id]:
			return fmt.Errorf("added tokens %q and %q share id %d", t.tokens[id], a.Content, id)
		}
		if old, ok := t.special[a.Content]; ok {
			return fmt.Errorf("added token %q has two ids, %d and %d", a.Content, old, id)
		}
		if id < len(t.tokens) && t.tokens[id] != "" && t.tokens[id] != a.Content {
			return fmt.Errorf("added token %q has id %d, which the vocabulary gives to %q", a.Content, id, t.tokens[id])
		}
		t.addToken(a.Content, id)
	}
	return nil
}

// unByteLevel maps a byte-level token spelling ("Ġthe") back to its raw bytes (" the").
func unByteLevel(tok string) (string, error) {
	var b strings.Builder
	for _, r := range tok {
		c, ok := pretokenizer.CharBytes[string(r)]
		if !ok {
			return "", fmt.Errorf("character %q is not in the byte-level alphabet", r)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func checkPreTokenizer(cfg map[string]interface{}) error {
	bad := fmt.Errorf("pre-tokenizer is not Llama-3's Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)]")
	if typ, _ := cfg["type"].(string); typ != "Sequence" {
		return bad
	}
	list, _ := cfg["pretokenizers"].([]interface{})
	if len(list) != 2 {
		return bad
	}
	split, _ := list[0].(map[string]interface{})
	bl, _ := list[1].(map[string]interface{})
	pat, _ := split["pattern"].(map[string]interface{})
	if split["type"] != "Split" || pat["Regex"] != llama3Pattern || split["behavior"] != "Isolated" || split["invert"] != false {
		return bad
	}
	if bl["type"] != "ByteLevel" || bl["use_regex"] != false || bl["add_prefix_space"] != false {
		return bad
	}
	return nil
}

// singleTemplate reads the ids the post-processor adds around a single sequence. Only special
// tokens before the sequence are supported (Llama-3: BOS).
func singleTemplate(cfg map[string]interface{}) ([]int, error) {
	if cfg == nil {
		return nil, nil
	}
	var parts []map[string]interface{}
	if typ, _ := cfg["type"].(string); typ == "Sequence" {
		list, _ := cfg["processors"].([]interface{})
		for _, p := range list {
			m, _ := p.(map[string]interface{})
			parts = append(parts, m)
		}
	} else {
		parts = append(parts, cfg)
	}
	var ids []int
	for _, p := range parts {
		pp, err := sugarCall("processor", func() (any, error) { return pretrained.CreatePostProcessor(p) })
		if err != nil {
			return nil, err
		}
		switch pp := pp.(type) {
		case *processor.ByteLevelProcessing:
			// Offsets only: no ids are added.
		case *processor.TemplateProcessing:
			seen := false
			for _, piece := range pp.Single {
				switch piece := piece.(type) {
				case *processor.SequencePiece:
					seen = true
				case *processor.SpecialTokenPiece:
					if seen {
						return nil, fmt.Errorf("special tokens after the sequence are not supported")
					}
					st, ok := pp.SpecialTokens.GetItemByKey(piece.Id)
					if !ok {
						return nil, fmt.Errorf("template token %q is not defined", piece.Id)
					}
					ids = append(ids, st.Ids...)
				}
			}
		default:
			return nil, fmt.Errorf("%T is not supported", pp)
		}
	}
	return ids, nil
}

func (t *Tokenizer) addToken(content string, id int) {
	t.special[content] = id
	t.specialIDs[id] = true
	if content != "" {
		t.firstByte[content[0]] = true
	}
	t.maxSpecial = max(t.maxSpecial, len(content))
	if t.specialTrie == nil {
		t.specialTrie, t.specialEnd = map[uint64]uint32{}, map[uint32]bool{}
	}
	node := uint32(0)
	for i := 0; i < len(content); i++ {
		key := uint64(node)<<8 | uint64(content[i])
		child, ok := t.specialTrie[key]
		if !ok {
			child = uint32(len(t.specialTrie) + 1)
			t.specialTrie[key] = child
		}
		node = child
	}
	t.specialEnd[node] = true
	for id >= len(t.tokens) {
		t.tokens = append(t.tokens, "")
	}
	t.tokens[id] = content
}

// AddSpecial adds a special token as Hugging Face's add_special_tokens does: it gets the next
// free id (unless it exists already) and is matched in the text like the other special tokens.
// The official code adds PadToken this way, which becomes id 128256.
func (t *Tokenizer) AddSpecial(content string) int {
	if id, ok := t.special[content]; ok {
		return id
	}
	if id, ok := t.vocab[content]; ok {
		t.addToken(content, id)
		return id
	}
	id := len(t.tokens)
	t.addToken(content, id)
	if content == PadToken {
		t.pad = id
	}
	return id
}

// BOS returns the id of <|begin_of_text|> (128000).
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id of <|end_of_text|> (128001), the base model's EOS the official code uses.
func (t *Tokenizer) EOS() int { return t.eos }

// PadID is the id bear writes into padding slots. Padding is masked, so any valid row of the
// embedding works; the official code's <pad> (128256, see AddSpecial) lies outside the base
// vocabulary, so bear never feeds it.
const PadID = 0

// Pad returns the id of <pad> once AddSpecial(PadToken) has been called (128256), else -1.
func (t *Tokenizer) Pad() int { return t.pad }

// VocabSize is the number of ids, added tokens included (128256, or 128257 with <pad>).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a special token or of a vocabulary token given by its raw text.
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if id, ok := t.special[s]; ok {
		return id, true
	}
	id, ok := t.vocab[s]
	return id, ok
}

// IsSpecial reports whether id is an added (special) token.
func (t *Tokenizer) IsSpecial(id int) bool { return t.specialIDs[id] }

// PostProcessorPrefix returns the ids the post-processor adds in front of a single text (BOS).
func (t *Tokenizer) PostProcessorPrefix() []int { return t.bosTemplate }

// Encode returns the ids of text without special tokens added (add_special_tokens=False);
// special-token text inside it is still matched.
func (t *Tokenizer) Encode(text string) []int { return t.AppendEncode(nil, text) }

// EncodeSpecial returns the ids with the post-processor's template applied (BOS + text), as
// Hugging Face's encode with add_special_tokens=True.
func (t *Tokenizer) EncodeSpecial(text string) []int {
	ids := append([]int(nil), t.bosTemplate...)
	return t.AppendEncode(ids, text)
}

// AppendEncode appends the ids of text (no template) to dst.
func (t *Tokenizer) AppendEncode(dst []int, text string) []int {
	var w bpeWork
	return t.appendEncode(dst, text, &w)
}

// Encoder encodes with scratch buffers kept between calls: the allocation-free path for hot
// loops. One Encoder per goroutine.
type Encoder struct {
	t *Tokenizer
	w bpeWork
}

// NewEncoder returns an Encoder of t.
func (t *Tokenizer) NewEncoder() *Encoder { return &Encoder{t: t} }

// Append appends the ids of text (no template) to dst, as Tokenizer.AppendEncode.
func (e *Encoder) Append(dst []int, text string) []int { return e.t.appendEncode(dst, text, &e.w) }

func (t *Tokenizer) appendEncode(dst []int, text string, w *bpeWork) []int {
	start := 0
	for i := 0; i < len(text); i++ {
		if !t.firstByte[text[i]] {
			continue
		}
		n := t.matchSpecial(text[i:])
		if n == 0 {
			continue
		}
		dst = t.appendPlain(dst, text[start:i], w)
		dst = append(dst, t.special[text[i:i+n]])
		i += n - 1
		start = i + 1
	}
	return t.appendPlain(dst, text[start:], w)
}

// matchSpecial returns the length of the longest special token at the start of s, or 0.
func (t *Tokenizer) matchSpecial(s string) int {
	best, node := 0, uint32(0)
	for i := 0; i < len(s); i++ {
		child, ok := t.specialTrie[uint64(node)<<8|uint64(s[i])]
		if !ok {
			break
		}
		node = child
		if t.specialEnd[node] {
			best = i + 1
		}
	}
	return best
}

func (t *Tokenizer) appendPlain(dst []int, text string, w *bpeWork) []int {
	for len(text) > 0 {
		n := splitLlama3(text)
		dst = t.appendPiece(dst, text[:n], w)
		text = text[n:]
	}
	return dst
}

// Decode returns the text of ids (special tokens included), as Hugging Face's
// decode(ids, skip_special_tokens=False): the bytes of the tokens, invalid UTF-8 replaced by
// U+FFFD per maximal invalid subsequence (Rust's String::from_utf8_lossy).
func (t *Tokenizer) Decode(ids []int) (string, error) {
	var b []byte
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			return "", fmt.Errorf("decode: id %d out of range [0, %d)", id, len(t.tokens))
		}
		b = append(b, t.tokens[id]...)
	}
	return lossyUTF8(b), nil
}

// TokenBytes returns the raw bytes of one id (a token may be part of a UTF-8 sequence).
func (t *Tokenizer) TokenBytes(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// SpecialTokens returns the contents of the added tokens, sorted by id.
func (t *Tokenizer) SpecialTokens() []string {
	ids := make([]int, 0, len(t.special))
	for _, id := range t.special {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.tokens[id]
	}
	return out
}

func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out.WriteString(string(b[i : i+n]))
			i += n
			continue
		}
		// Maximal prefix of a valid sequence (Unicode's "substitution of maximal subparts").
		out.WriteRune(utf8.RuneError)
		i += invalidPrefix(b[i:])
	}
	return out.String()
}

func invalidPrefix(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if x < lo || x > hi {
			break
		}
		n++
	}
	return n
}
