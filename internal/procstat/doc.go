// Package procstat reads the process's own resource usage for benchmarks: CPU time (on a busy
// machine one-thread CPU figures stay comparable where wall time does not), peak resident
// memory, and the proportional set size, which counts a file mapped twice once.
package procstat
