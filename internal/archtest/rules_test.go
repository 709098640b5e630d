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
	// Pure leaves: functions over slices and files, no project imports (trainlog writes through
	// internal/atomicfs).
	{"lossgrad", nil},
	{"decode", nil},
	{"optim", nil},
	{"trainlog", []string{"internal/atomicfs"}},

	// Text side: the tokenizer (with its internal checkers) and the training set built on it.
	{"tokenize/...", []string{"tokenize/..."}},
	{"trainset", []string{"tokenize"}},

	// Graph side: checkpoints, builder, exporter, autodiff, adapters; no ONNX Runtime.
	{"onnx/...", []string{"onnx/...", "internal/atomicfs"}},

	// ONNX Runtime front-ends and the jobs that drive them.
	{"runtime", []string{"onnx/...", "decode", "internal/atomicfs"}},
	{"runtime/evaluate", []string{"runtime", "onnx/...", "decode", "tokenize", "internal/atomicfs"}},
	{"runtime/train", []string{"runtime", "runtime/evaluate", "onnx/...", "lossgrad", "optim", "trainset", "trainlog", "tokenize", "decode", "dist", "internal/atomicfs"}},

	// Data-parallel communication (the MPI binding): a leaf. Its test helper re-executes test
	// binaries under mpirun.
	{"dist", []string{"internal/mpirun"}},
	{"internal/mpirun", nil},

	// bear report: reads train.jsonl, metrics.json (evaluate's types) and old checkpoints' metadata (onnx/hf).
	{"report", []string{"trainlog", "runtime/evaluate", "onnx/hf", "internal/atomicfs"}},

	// Benchmarks of whole jobs, and their leaf helper reading the process's CPU time and RSS.
	{"internal/bench", []string{"runtime", "runtime/train", "dist", "onnx/...", "lossgrad", "decode", "tokenize", "trainset", "optim", "internal/procstat"}},
	{"internal/procstat", nil},

	// Crash-safe file and folder writes, used by everything that writes outputs.
	{"internal/atomicfs", nil},

	// Test helpers and this package: anything but tools.
	{"internal/forwardcases", []string{"..."}},
	{"internal/testdeps", []string{"..."}},
	{"internal/archtest", []string{"..."}},

	// The command line and generators: anything.
	{"tools/...", []string{"..."}},
}
