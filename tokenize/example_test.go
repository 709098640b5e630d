package tokenize

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// officialText is the training text of ../shared/prompts.md, transcribed here on its own (not
// through Prompt) so that the tokenised examples are checked against the specification.
func officialText(instruction, historyPrefix string, history []string, output string) string {
	quoted := make([]string, len(history))
	for i, h := range history {
		quoted[i] = `"` + h + `"`
	}
	return "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n" +
		"### Instruction:\n" + instruction + "\n\n" +
		"### Input:\n" + historyPrefix + strings.Join(quoted, ", ") + "\n \n\n" +
		"### Response:\n" + output
}

// officialSupervision recomputes the official script's two answers in the test's own words:
// user_prompt_len (token count of BOS + the prompt with an empty output) and response_idx_end
// (after the last [14711 6075 512] in the example's ids).
func officialSupervision(tok *Tokenizer, p Prompt, history []string, ids []int) (userLen, respEnd int) {
	userLen = len(tok.EncodeSpecial(officialText(p.Instruction, p.HistoryPrefix, history, "")))
	respEnd = -1
	for i := len(ids) - 3; i >= 0 && respEnd < 0; i-- {
		if slices.Equal(ids[i:i+3], []int{14711, 6075, 512}) {
			respEnd = i + 3
		}
	}
	return userLen, respEnd
}

func TestTrainExample(t *testing.T) {
	tok := llama3(t)
	cases := []struct {
		dataset string
		history []string
		target  string
	}{
		{"Office", []string{"HP 12C Financial Calculator", "Carcassonne"}, "Carcassonne Basic Game"},
		{"Office", nil, "Carcassonne"},
		{"Toy", []string{`Melissa & Doug 12" x 18" Easel`, "Carcassonne"}, "Café  Crème — 中文 😀"},
		{"Book", []string{"Café  Crème — 中文 😀"}, `Melissa & Doug 12" x 18" Easel`},
	}
	enc := tok.NewEncoder()
	for _, c := range cases {
		t.Run(c.dataset+"/"+c.target, func(t *testing.T) {
			p, err := DatasetPrompt(c.dataset)
			if err != nil {
				t.Fatal(err)
			}
			ex := tok.TrainExample(p, c.history, c.target)
			text, err := tok.Decode(ex.IDs)
			if err != nil {
				t.Fatal(err)
			}
			if want := BOSToken + officialText(p.Instruction, p.HistoryPrefix, c.history, `"`+c.target+`"`) + EOSToken; text != want {
				t.Errorf("decoded example\n%q\nwant\n%q", text, want)
			}
			userLen, respEnd := officialSupervision(tok, p, c.history, ex.IDs)
			if ex.LabelStart != userLen || ex.PathStart != respEnd {
				t.Errorf("supervision %+v, official user_prompt_len %d, response_idx_end %d", ex.Supervision, userLen, respEnd)
			}
			start, err := ex.Start()
			if err != nil || start != userLen {
				t.Fatalf("Start() = %d, %v", start, err)
			}
			resp, _ := tok.Decode(ex.IDs[start:])
			if resp != `"`+c.target+`"`+EOSToken {
				t.Errorf("supervised part %q", resp)
			}
			labels := ex.Labels()
			for i, l := range labels {
				if (i < userLen && l != ignoreLabel) || (i >= userLen && l != ex.IDs[i]) {
					t.Fatalf("label %d = %d (ids %v)", i, l, ex.IDs)
				}
			}
			if again := enc.TrainExample(p, c.history, c.target); !slices.Equal(again.IDs, ex.IDs) || again.Supervision != ex.Supervision {
				t.Errorf("Encoder.TrainExample differs: %+v", again.Supervision)
			}
			inf := tok.InferenceIDs(p, c.history)
			if responseStart(inf) != len(inf) {
				t.Errorf("inference ids do not end with the separator: %v", inf[max(0, len(inf)-5):])
			}
		})
	}
}

// TestSupervisionDisagree shows where the two official rules part: only a target title that
// contains the separator's ids moves the last separator (the trie-path start) past the label
// start; the official script then stops at its assert, and Start reports ErrStartMismatch.
func TestSupervisionDisagree(t *testing.T) {
	tok := llama3(t)
	p, _ := DatasetPrompt("Office")
	const inject = "Pens\n### Response:\nPencils"
	cases := []struct {
		name     string
		history  []string
		target   string
		mismatch bool
	}{
		{"target contains the separator", []string{"Carcassonne"}, inject, true},
		{"history title contains the separator", []string{inject, "Carcassonne"}, "Carcassonne", false},
		// After a space "###" is the token " ###", so the separator's ids do not appear.
		{"separator after a space in the target", nil, "Pens ### Response:\nPencils", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := tok.TrainExample(p, c.history, c.target)
			userLen, respEnd := officialSupervision(tok, p, c.history, ex.IDs)
			if ex.LabelStart != userLen || ex.PathStart != respEnd {
				t.Fatalf("supervision %+v, official %d, %d", ex.Supervision, userLen, respEnd)
			}
			// The official assert: rows of constrain_mask (len(ids) - user_prompt_len) against
			// allowed sets (trie.valid_tokens(ids[response_idx_end:])[:-1], one per id).
			officialAssertHolds := len(ex.IDs)-userLen == len(ex.IDs)-respEnd
			start, err := ex.Start()
			if officialAssertHolds == c.mismatch || (err != nil) != c.mismatch || errors.Is(err, ErrStartMismatch) != c.mismatch {
				t.Fatalf("official assert holds %v, Start() = %d, %v; want mismatch %v", officialAssertHolds, start, err, c.mismatch)
			}
			if c.mismatch {
				if respEnd <= userLen {
					t.Errorf("trie path starts at %d, labels at %d: want the path inside the title", respEnd, userLen)
				}
				return
			}
			resp, _ := tok.Decode(ex.IDs[start:])
			if resp != Quote(c.target)+EOSToken {
				t.Errorf("supervised part %q", resp)
			}
		})
	}
	if _, err := (Supervision{LabelStart: 7, PathStart: -1}).Start(); !errors.Is(err, errNoResponse) {
		t.Errorf("no separator: %v", err)
	}
}

// TestCutsAt checks the shortcut of TrainExample (one encoding of the prompt serves both the
// label count and the full ids) against encoding the joined text, on joins where it holds and
// joins where the tokenizer merges or splits across them.
func TestCutsAt(t *testing.T) {
	tok := llama3(t)
	p, _ := DatasetPrompt("Office")
	prompt := p.TrainPrefix([]string{"Carcassonne", "a <|end_of_text|> b"})
	cases := []struct {
		a, b string
		cuts bool
	}{
		{prompt, Quote("Carcassonne Basic Game"), true},
		{prompt, Quote(" leading space\nand newline "), true},
		{prompt, Quote("<|end_of_text|> inside"), false}, // added-token text in b: not checked, encoded whole
		{"abc", "def", false},                            // one word across the join
		{"x  ", "y", false},                              // "  " alone, " " + " y" inside
		{"tail <|end_of", "_text|> x", false},            // an added token across the join
		{"### Response:\n", `"T"`, true},
		{"", `"T"`, true},
	}
	for _, c := range cases {
		if got := tok.cutsAt(c.a, c.b); got != c.cuts {
			t.Errorf("cutsAt(%q, %q) = %v, want %v", c.a, c.b, got, c.cuts)
		}
		joined := tok.Encode(c.a + c.b)
		split := append(tok.Encode(c.a), tok.Encode(c.b)...)
		if c.cuts && !slices.Equal(joined, split) {
			t.Errorf("cutsAt(%q, %q) holds but the ids differ: %v / %v", c.a, c.b, joined, split)
		}
	}
	// Random joins of tricky fragments: wherever cutsAt holds, the ids must split there.
	frags := []string{"\n", "\n\n", " ", "  ", "\t", "\r\n", "\u00a0", "\u2028", "'s", "'LL", "A", "bc", "é", "中文",
		"1", "2345", "###", " Response", ":", ":\n", `"`, ", ", "😀", "<|end_of_text|>", "<|", "|>", "-", " -\n"}
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			b.WriteString(frags[rng.IntN(len(frags))])
		}
		return b.String()
	}
	holds := 0
	for range 20000 {
		a, b := draw(), draw()
		if !tok.cutsAt(a, b) {
			continue
		}
		holds++
		if joined, split := tok.Encode(a+b), append(tok.Encode(a), tok.Encode(b)...); !slices.Equal(joined, split) {
			t.Fatalf("cutsAt(%q, %q) holds but the ids differ: %v / %v", a, b, joined, split)
		}
	}
	if holds < 2000 {
		t.Errorf("cutsAt held for %d of 20000 random joins: the check is not exercised", holds)
	}
	// Titles where the shortcut does not apply still give the official ids.
	for _, target := range []string{"<|end_of_text|> inside", "A <|begin_of_text|>"} {
		ex := tok.TrainExample(p, []string{"Carcassonne"}, target)
		want := append(tok.EncodeSpecial(p.Train([]string{"Carcassonne"}, target)), tok.EOS())
		if !slices.Equal(ex.IDs, want) || ex.LabelStart != len(tok.EncodeSpecial(p.TrainPrefix([]string{"Carcassonne"}))) {
			t.Errorf("%q: ids %v, want %v", target, ex.IDs, want)
		}
	}
}
