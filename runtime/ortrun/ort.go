package ortrun

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// libraryOption names, in errors, the library path a caller gives Init (the command line maps it
// to its flag).
const libraryOption = "ortrun.Init(path)"

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// cachedLibrary is where `make deps` puts the library, relative to the repository root.
const cachedLibrary = ".cache/onnxruntime/libonnxruntime.so.1"

// findLibrary resolves the ONNX Runtime library for dev: the explicit path (a --ort-lib flag)
// first, then $ONNXRUNTIME_SHARED_LIBRARY_PATH, then .cache/ in the working directory or any
// parent of it or of the executable (for CUDA, the build `make deps-cuda` fetches). A missing
// library gives one error that says how to get it.
func findLibrary(explicit string, dev Device) (string, error) {
	check := func(p, from string) (string, error) {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ONNX Runtime library %s (from %s): %w", p, from, err)
		}
		return p, nil
	}
	if explicit != "" {
		return check(explicit, libraryOption)
	}
	if p := os.Getenv(LibraryEnv); p != "" {
		return check(p, "$"+LibraryEnv)
	}
	if dev == CUDA {
		return findCUDALibrary()
	}
	p, _, err := FindCached(cachedLibrary)
	if err != nil || p != "" {
		return p, err
	}
	return "", fmt.Errorf("ONNX Runtime library not found: give its path ("+libraryOption+"), set $%s, or run `make deps` in the bear checkout "+
		"(it extracts libonnxruntime.so.1 from `npm pack onnxruntime-node@1.30.0` into %s)", LibraryEnv, cachedLibrary)
}

// FindCached looks for rel (a path under the repository root, as `make deps` writes it) in the
// working directory and each of its parents, then in the executable's folder and each of its
// parents, so that bin/bear finds the checkout's .cache from anywhere. It returns the first
// that exists, or "" and a description of each place it looked.
func FindCached(rel string) (path string, looked []string, err error) {
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	if exe, err := os.Executable(); err == nil && (len(roots) == 0 || filepath.Dir(exe) != roots[0]) {
		roots = append(roots, filepath.Dir(exe))
	}
	for _, r := range roots {
		for d := r; ; d = filepath.Dir(d) {
			p := filepath.Join(d, rel)
			if _, err := os.Stat(p); err == nil {
				return p, nil, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", nil, err
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		looked = append(looked, fmt.Sprintf("%s in %s and each folder above it", rel, r))
	}
	return "", looked, nil
}

var (
	initOnce sync.Once
	initLib  string
	initErr  error
)

// telemetryEnv is the variable ONNX Runtime reads when its environment is created: the
// onnxruntime-node 1.30 build otherwise starts its telemetry system then, which writes a device
// id and an event database under ~/.cache/Microsoft/DeveloperTools (or $XDG_CACHE_HOME) before
// the C API's DisableTelemetryEvents can be called. Init sets it to 1 unless the user set it.
const telemetryEnv = "ORT_DISABLE_TELEMETRY"

// logEnv names ONNX Runtime's own log level for debugging: verbose, info, warning, error or
// fatal (the default). ORT prints its log lines straight to standard error with terminal colour
// codes; every error it logs also comes back as the status bear wraps and prints, so by default
// only fatal ones are let through.
const logEnv = "BEAR_ORT_LOG"

// Init loads the ONNX Runtime library for the CPU once per process, with telemetry off. Later
// calls must name the same library (or none).
func Init(explicit string) error { return InitDevice(explicit, CPU) }

// InitDevice loads the ONNX Runtime library for sessions on dev, as Init does: without an
// explicit path or $ONNXRUNTIME_SHARED_LIBRARY_PATH, CUDA uses the build `make deps-cuda`
// fetches.
func InitDevice(explicit string, dev Device) error {
	lib, err := findLibrary(explicit, dev)
	if err != nil {
		return err
	}
	initOnce.Do(func() {
		initLib = lib
		initErr = initEnvironment(lib)
	})
	if initErr == nil && lib != initLib {
		abs1, _ := filepath.Abs(lib)
		abs2, _ := filepath.Abs(initLib)
		if abs1 != abs2 {
			return fmt.Errorf("ONNX Runtime already loaded from %s, cannot switch to %s", initLib, lib)
		}
	}
	return initErr
}

// initEnvironment loads the library and creates the process's ONNX Runtime environment.
func initEnvironment(lib string) error {
	logLevel, err := ortLogLevel(os.Getenv(logEnv))
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv(telemetryEnv); !set {
		// Read by the library when the environment is created, so it must be set first.
		if err := os.Setenv(telemetryEnv, "1"); err != nil {
			return fmt.Errorf("turn ONNX Runtime telemetry off: %w", err)
		}
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(logLevel); err != nil {
		return fmt.Errorf("load ONNX Runtime from %s: %w", lib, wrapORT(err))
	}
	// The environment variable keeps the telemetry system from starting; this also stops the
	// events of builds that ignore it. A user's explicit ORT_DISABLE_TELEMETRY=0 is respected.
	if os.Getenv(telemetryEnv) != "0" {
		if err := ort.DisableTelemetry(); err != nil {
			return fmt.Errorf("turn ONNX Runtime telemetry off: %w", wrapORT(err))
		}
	}
	return nil
}

// ortLogLevel maps a $BEAR_ORT_LOG value to the environment option.
func ortLogLevel(name string) (ort.EnvironmentOption, error) {
	switch name {
	case "verbose":
		return ort.WithLogLevelVerbose(), nil
	case "info":
		return ort.WithLogLevelInfo(), nil
	case "warning":
		return ort.WithLogLevelWarning(), nil
	case "error":
		return ort.WithLogLevelError(), nil
	case "fatal", "":
		return ort.WithLogLevelFatal(), nil
	}
	return nil, fmt.Errorf("$%s %q: want verbose, info, warning, error or fatal", logEnv, name)
}

// ortError is an ONNX Runtime error with terminal escape sequences removed from its text.
type ortError struct {
	msg string
	err error
}

func (e *ortError) Error() string { return e.msg }
func (e *ortError) Unwrap() error { return e.err }

// wrapORT cleans an error that came from ONNX Runtime for printing: its text can carry the
// colour codes of ORT's terminal logger, which show up as garbage in a log file.
func wrapORT(err error) error {
	if err == nil {
		return nil
	}
	return &ortError{msg: stripEscapes(err.Error()), err: err}
}

// stripEscapes removes ANSI terminal escape sequences (colours, cursor moves) from s: CSI
// sequences (ESC [ parameters final-byte), OSC sequences (ESC ] ... BEL or ESC \), two-byte
// escapes, and stray ESC and C1 CSI bytes.
func stripEscapes(s string) string {
	if !strings.ContainsAny(s, "\x1b\u009b") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s, or 0 when none starts there.
func escapeLen(s string) int {
	switch {
	case strings.HasPrefix(s, "\u009b"): // C1 CSI, UTF-8 encoded
		return 2 + csiLen(s[2:])
	case s[0] != 0x1b:
		return 0
	case len(s) == 1:
		return 1
	case s[1] == '[':
		return 2 + csiLen(s[2:])
	case s[1] == ']':
		return 2 + oscLen(s[2:])
	}
	return 2
}

// csiLen is the length of a CSI sequence's parameters and final byte (0x40..0x7e).
func csiLen(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x40 && c <= 0x7e {
			return i + 1
		} else if c < 0x20 || c > 0x7e { // malformed: drop what was read, keep the rest
			return i
		}
	}
	return len(s)
}

// oscLen is the length of an OSC sequence's text and terminator (BEL, or ESC and a backslash).
func oscLen(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0x07 {
			return i + 1
		}
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
			return i + 2
		}
	}
	return len(s)
}

// LibraryVersion loads ONNX Runtime as Init does and returns the library's path and version.
func LibraryVersion(explicit string) (lib, version string, err error) {
	if err := Init(explicit); err != nil {
		return "", "", err
	}
	return initLib, ort.GetVersion(), nil
}
