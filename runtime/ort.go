package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// cachedLibrary is where `make deps` puts the library, relative to the repository root.
const cachedLibrary = ".cache/onnxruntime/libonnxruntime.so.1"

// FindLibrary resolves the ONNX Runtime library: the explicit path (a --ort-lib flag) first,
// then $ONNXRUNTIME_SHARED_LIBRARY_PATH, then .cache/ in the working directory or any parent
// of it or of the executable. A missing library gives one error that says how to get it.
func FindLibrary(explicit string) (string, error) {
	check := func(p, from string) (string, error) {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ONNX Runtime library %s (from %s): %w", p, from, err)
		}
		return p, nil
	}
	if explicit != "" {
		return check(explicit, "--ort-lib")
	}
	if p := os.Getenv(LibraryEnv); p != "" {
		return check(p, "$"+LibraryEnv)
	}
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, filepath.Dir(exe))
	}
	for _, r := range roots {
		for d := r; ; d = filepath.Dir(d) {
			p := filepath.Join(d, cachedLibrary)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("ONNX Runtime library not found: pass --ort-lib, set $%s, or run `make deps` in the bear checkout "+
		"(it extracts libonnxruntime.so.1 from `npm pack onnxruntime-node@1.30.0` into %s)", LibraryEnv, cachedLibrary)
}

var (
	initOnce sync.Once
	initLib  string
	initErr  error
)

// Init loads the ONNX Runtime library once per process. Later calls must name the same library
// (or none).
func Init(explicit string) error {
	lib, err := FindLibrary(explicit)
	if err != nil {
		return err
	}
	initOnce.Do(func() {
		initLib = lib
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("load ONNX Runtime from %s: %w", lib, err)
		}
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
