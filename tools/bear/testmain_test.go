//go:build !mpi

package main

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	runAsBear()
	os.Exit(m.Run())
}
