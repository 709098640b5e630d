// Package opterr is the error a library of the project returns for an option it cannot use:
// the field of its Options, named with its package and type (train.Options.LR), the value and
// why. A library user reads the field to change; the command line, which alone knows the flag
// spellings, names the flag instead.
package opterr
