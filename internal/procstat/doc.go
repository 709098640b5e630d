// Package procstat reads the process's own resource usage for benchmarks: CPU time (on a busy
// machine one-thread CPU figures stay comparable where wall time does not) and peak resident
// memory.
package procstat
