// Package archtest holds no code: its tests enforce the project's layout on every non-test
// Go file of the module, so that `go test ./...` (and `make check`) fails when the layout
// drifts.
//
//   - Import direction: each project package may import only the project packages its entry
//     in the table of rules_test.go allows (path prefixes relative to the module root,
//     "x/..." meaning x and everything below it), and nothing outside tools/ may import
//     tools/.... A package without an entry fails the test until one is added, so a new
//     package's place in the layout is a decision someone wrote down. The table follows
//     docs/design.md: pure leaves (lossgrad, decode) at the bottom, then tokenize and onnx,
//     then runtime and the jobs under it with their parts, tools at the top.
//   - Function length: no function or method is longer than 100 lines, counted from the
//     line of its func keyword to its closing brace. Generated files (a "Code generated
//     ... DO NOT EDIT." header, as go/ast.IsGenerated reads it) and _test.go files are
//     exempt. Long functions hide their steps; split them along those steps instead.
//
// Files are found the way the go command finds packages: directories whose names start
// with "." or "_", testdata directories and nested modules are skipped. Build constraints
// are ignored, so every platform's files are checked.
package archtest
