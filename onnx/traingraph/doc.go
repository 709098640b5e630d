// Package traingraph assembles the graphs of a training step: the Llama forward graph (package
// llama) and its backward graph (package autodiff), serialized, with the manifest that says how
// to feed them (inputs, outputs, residuals, trainable values), and writes them as the artifacts
// of bear export. Running them is package ortrun's business.
package traingraph
