// Package forwardcases reads the golden forward cases of testdata/forward for the tests of
// several packages: cases.json (the inputs) and golden.json.gz (the PyTorch reference's
// logits, written by tools/reference/llamaref.py).
package forwardcases
