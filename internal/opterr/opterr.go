package opterr

import (
	"fmt"
)

// Error says that Option (for example "train.Options.LR") cannot take Value (nil: no value
// shown) and why. Problem may name other options the same way ("set train.Options.Resume").
type Error struct {
	Option  string
	Value   any
	Problem string
	Err     error // the underlying error, if any
}

// New returns an *Error for option and value, with the problem formatted from format and args.
func New(option string, value any, format string, args ...any) *Error {
	return &Error{Option: option, Value: value, Problem: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error for option whose problem is err.
func Wrap(option string, value any, err error) *Error {
	return &Error{Option: option, Value: value, Err: err}
}

func (e *Error) Error() string {
	s := e.Option
	if e.Value != nil {
		s += fmt.Sprintf(" %v", e.Value)
	}
	if e.Problem != "" {
		s += ": " + e.Problem
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
