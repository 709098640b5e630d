package tokenize

import (
	"fmt"
	"sort"
	"strings"
)

// The official templates (train_*.py and inference.py of the official repository). They differ by one space after "request.":
// one in the training template, two in the inference template.
const (
	trainHeader = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n"
	inferHeader = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.  \n\n"
	// ResponseSeparator ends every prompt; the response (a quoted title) follows it.
	ResponseSeparator = "### Response:\n"
)

// Prompt holds the per-dataset strings of the template.
type Prompt struct {
	// Instruction is the text under "### Instruction:".
	Instruction string
	// HistoryPrefix starts the input, before the quoted history titles (it ends with a space).
	HistoryPrefix string
}

var datasetPrompts = map[string]Prompt{
	"Toy": {
		"Given a list of toys the user has played before, please recommend a new toy that the user likes to the user.",
		"The user has played the following toys before: ",
	},
	"Book": {
		"Given a list of books the user has read before, please recommend a new book that the user likes to the user.",
		"The user has read the following books before: ",
	},
	"Clothing": {
		"Given a list of clothing the user has worn before, please recommend a new clothing that the user likes to the user.",
		"The user has worn the following clothing before: ",
	},
	"Office": {
		"Given a list of office products the user has used before, please recommend a new office product that the user likes to the user.",
		"The user has used the following office products before: ",
	},
	"Beauty": {
		"Given a list of beauty products the user has used before, please recommend a new beauty product that the user likes to the user.",
		"The user has used the following beauty products before: ",
	},
	"Electronic": {
		"Given a list of electronic products the user has used before, please recommend a new electronic product that the user likes to the user.",
		"The user has used the following electronic products before: ",
	},
	"Game": {
		"Given a list of video games the user has played before, please recommend a new video game that the user likes to the user.",
		"The user has played the following video games before: ",
	},
	"Music": {
		"Given a list of music the user has listened to before, please recommend a new music that the user likes to the user.",
		"The user has listened to the following music before: ",
	},
}

// datasets lists the dataset names DatasetPrompt knows, sorted.
func datasets() []string {
	names := make([]string, 0, len(datasetPrompts))
	for n := range datasetPrompts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DatasetPrompt returns the official strings of a dataset (Toy, Book, Clothing, Office, Beauty,
// Electronic, Game, Music; the official code also calls Book "Amazon_Books" and Game
// "amazon_game", which are accepted too).
func DatasetPrompt(name string) (Prompt, error) {
	switch name {
	case "Amazon_Books":
		name = "Book"
	case "amazon_game":
		name = "Game"
	}
	p, ok := datasetPrompts[name]
	if !ok {
		return Prompt{}, fmt.Errorf("no prompt for dataset %q (known: %s)", name, strings.Join(datasets(), ", "))
	}
	return p, nil
}

// Input is the "### Input:" text: the history prefix, the titles each in double quotes joined
// by ", ", then a newline and one space.
func (p Prompt) Input(history []string) string {
	var b strings.Builder
	b.WriteString(p.HistoryPrefix)
	for i, h := range history {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"`)
		b.WriteString(h)
		b.WriteString(`"`)
	}
	b.WriteString("\n ")
	return b.String()
}

func (p Prompt) build(header string, history []string, output string) string {
	return header + "### Instruction:\n" + p.Instruction + "\n\n### Input:\n" + p.Input(history) + "\n\n" + ResponseSeparator + output
}

// Train is the training text: the training template with the output `"TARGET"`. EOS is not
// part of the text; TrainExample appends its id.
func (p Prompt) Train(history []string, target string) string {
	return p.build(trainHeader, history, Quote(target))
}

// TrainPrefix is the training template with an empty output (the "user prompt" of the official
// code, whose token count is the number of unsupervised label positions).
func (p Prompt) TrainPrefix(history []string) string {
	return p.build(trainHeader, history, "")
}

// Inference is the inference text: the inference template (two spaces after "request."),
// ending right after "### Response:\n".
func (p Prompt) Inference(history []string) string {
	return p.build(inferHeader, history, "")
}

// Quote wraps a title in double quotes, as the official code writes every title.
func Quote(title string) string { return `"` + title + `"` }
