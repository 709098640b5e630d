package archtest

// rules is the import table: for each project package (its path relative to the module
// root), the project packages it may import. Patterns: "x" is the package x only, "x/..."
// is x and every package below it, "..." is every project package. A package takes the
// entry that names it exactly, else the longest "x/..." entry that covers it. Whatever the
// entry says, only packages under tools/ may import tools/... (checked separately).
//
// Packages that do not exist yet may have entries; a package that exists and has none fails
// TestImportDirection.
var rules = []rule{
	// Pure leaves: functions over slices, no project imports.
	{"lossgrad", nil},
	{"decode", nil},

	// Text side: the tokenizer (with its internal checkers).
	{"tokenize/...", []string{"tokenize/..."}},

	// Graph side: checkpoints, builder, exporter, autodiff, adapters; no ONNX Runtime.
	{"onnx/...", []string{"onnx/...", "internal/atomicfs"}},

	// ONNX Runtime front-ends.
	{"runtime/ortrun", []string{"onnx/...", "decode", "tokenize", "internal/atomicfs"}},

	// The evaluation job, and the schema of its results (a leaf, so that readers of results
	// need no ONNX Runtime).
	{"runtime/evaluate/results", []string{"internal/atomicfs"}},
	{"runtime/evaluate", []string{"runtime/ortrun", "runtime/evaluate/results", "onnx/...", "decode", "tokenize", "internal/atomicfs", "internal/opterr"}},

	// The training job and its parts: the optimizer, the training set and its batches, the log
	// and its TensorBoard copy, the data-parallel communicator (the MPI binding; its test helper re-executes test
	// binaries under mpirun).
	{"runtime/train/optim", nil},
	{"runtime/train/trainset", []string{"tokenize", "internal/opterr"}},
	{"runtime/train/trainlog", []string{"internal/atomicfs"}},
	{"runtime/train/tfevents", []string{"internal/atomicfs"}},
	{"runtime/train/comm", []string{"internal/mpirun"}},
	{"runtime/train", []string{"runtime/ortrun", "runtime/evaluate", "runtime/evaluate/results", "runtime/train/optim", "runtime/train/trainset",
		"runtime/train/trainlog", "runtime/train/tfevents", "runtime/train/comm", "onnx/...", "lossgrad", "tokenize", "decode", "internal/atomicfs", "internal/opterr"}},

	// The shared bottom layer: crash-safe writes and output folders, the libraries' option
	// errors, the process's CPU time and RSS, the mpirun test helper.
	{"internal/atomicfs", nil},
	{"internal/opterr", nil},
	{"internal/procstat", nil},
	{"internal/mpirun", nil},

	// Test helpers and this package: anything but tools.
	{"internal/forwardcases", []string{"..."}},
	{"internal/testdeps", []string{"..."}},
	{"internal/archtest", []string{"..."}},

	// bear report reads results and logs only: no ONNX Runtime, no tokenizer.
	{"tools/bear/report", []string{"runtime/evaluate/results", "runtime/train/trainlog", "onnx/hf", "onnx/peft", "internal/atomicfs"}},

	// The command line, its measurement code and the generators: anything.
	{"tools/...", []string{"..."}},
}
