// Package decode: see doc.go.
package decode
