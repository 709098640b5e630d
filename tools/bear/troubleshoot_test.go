package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// troubleshootTests names, for each row of the README's "When something goes wrong" table (by
// the start of its first cell), the tests that check what the row says bear does.
var troubleshootTests = map[string][]string{
	"`--out` is an input":                          {"TestOutMustNotBeAnInput", "TestOutClaimed", "TestMergeNeverTouchesItsInputs", "TestReportCommandErrors"},
	"a second `bear train` or `bear eval`":         {"TestOutLockedByAnotherRun", "TestOutClaimed", "TestLockDirHeld", "TestLockDirExclusive"},
	"a run holding an `--out` was killed":          {"TestLockDirStale", "TestOutLockedByAnotherRun"},
	"`bear init` / `bear merge` into a folder":     {"TestOutFolderReplacedWholeOrRefused"},
	"a kill during a write left":                   {"TestLeftoversRemoved", "TestCleanLeftovers"},
	"a folder holds both `model.safetensors`":      {"TestSingleFileBeatsStaleIndex"},
	"an adapter has tensors for modules outside":   {"TestReadAdapterRefusesUnmatchedTensors"},
	"an adapter's `adapter_config.json` has":       {"TestPatternLogitsEquivalents", "TestPatternMergeEquivalents", "TestPatternMatchesPython", "TestParseAdapterConfigPatternErrors"},
	"the checkpoint's weight files are rewritten":  {"TestMapTruncatedFile"},
	"a converted-weight cache entry is damaged":    {"TestCacheEntryReusedAndRepaired", "TestCacheNotFooledBySameSizeAndTime"},
	"the cache folder cannot be written":           {"TestUnwritableCacheFolderSaysWhatToDo", "TestUnwritableCacheFolder"},
	"the tokenizer gives ids":                      {"TestVocabularyChecked"},
	"the model or the adapter holds NaN":           {"TestNonFiniteWeights", "TestSearchNonFinite"},
	"`bear train` interrupted":                     {"TestKillAndResume", "TestTrainInterruptedDuringEvaluation", "TestEvaluationInterruptedAndResumed", "TestEvaluationRerunAfterKill"},
	"the kill cut the last line of `train.jsonl`":  {"TestTornLogLineRestored"},
	"`--resume` with another model":                {"TestResumeShowsTheDifference", "TestShowDifference"},
	"a checkpoint damaged on disk":                 {"TestCheckpointChecksums"},
	"`bear eval` interrupted":                      {"TestRunShardsMergeResume", "TestModelsIdentifiedByContent"},
	"`journal.jsonl` corrupt":                      {"TestParseJournal", "TestRunShardsMergeResume", "TestModelsIdentifiedByContent"},
	"`bear eval --merge` of shards":                {"TestRunShardsMergeResume", "TestModelsIdentifiedByContent"},
	"`bear eval --pruning`":                        {"TestPruningRowBound"},
	"item ids in a split that the catalogue lacks": {"TestDroppedIDsReported", "TestRunOutputs"},
	"`--beams` larger than the number":             {"TestBeamsBoundedByTrie", "TestEvalBeamsCheckedFirst"},
	"no `tokenizer.json` found":                    {"TestFindTokenizer"},
	"stderr is not a terminal":                     {"TestProgressLines", "TestTrainCommand"},
	"a rank of `mpirun … bear-mpi train` fails":    {"TestDataParallelKillAndResume", "TestMPITrainCommand"},
	"an ONNX Runtime error":                        {"TestORTQuietAndPrivate", "TestStripEscapes"},
	"an internal error (a bug)":                    {"TestPanicIsOneLine"},
}

// TestTroubleshootingTable: every row of the README's table has tests, every test named exists
// (in any package of the module, build tags included), and no entry is left for a row that is
// gone.
func TestTroubleshootingTable(t *testing.T) {
	rows := troubleshootRows(t)
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the README's table", len(rows))
	}
	tests := testFunctions(t)
	used := map[string]bool{}
	for _, row := range rows {
		var key string
		for k := range troubleshootTests {
			if strings.HasPrefix(row, k) {
				if key != "" {
					t.Errorf("row %q matches the entries %q and %q", row, key, k)
				}
				key = k
			}
		}
		if key == "" {
			t.Errorf("README row %q names no test: add it to troubleshootTests", row)
			continue
		}
		used[key] = true
		for _, name := range troubleshootTests[key] {
			if !tests[name] {
				t.Errorf("row %q: no test function %s in the module", row, name)
			}
		}
	}
	for k := range troubleshootTests {
		if !used[k] {
			t.Errorf("troubleshootTests has %q, which no README row starts with", k)
		}
	}
}

// troubleshootRows returns the first cell of each row of the table under "## When something
// goes wrong" in the README.
func troubleshootRows(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []string
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## When something goes wrong"
		case in && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| what happened"):
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
			rows = append(rows, cell)
		}
	}
	return rows
}

// testFunctions lists the Test functions of every _test.go file of the module.
func testFunctions(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	names := map[string]bool{}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(data, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
