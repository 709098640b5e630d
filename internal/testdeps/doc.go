// Package testdeps locates, for tests, the run-time dependencies that `make deps` fetches.
// A missing dependency fails the test with the command that provides it: never a skip.
package testdeps
