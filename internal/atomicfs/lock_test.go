package atomicfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockChildEnv makes the test binary a child that locks the folder it names, prints "locked"
// and waits to be killed.
const lockChildEnv = "BEAR_ATOMICFS_LOCK_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockChildEnv); dir != "" {
		if _, err := LockDir(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestLockDirHeld: a second lock of a held folder is refused with the holder's pid and host,
// and the folder can be locked again once released, with nothing left behind.
func TestLockDirHeld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	l, err := LockDir(dir)
	if err != nil || l.Stale != nil {
		t.Fatalf("LockDir: %v (stale %v)", err, l.Stale)
	}
	_, err = LockDir(dir)
	var le *LockedError
	host, _ := os.Hostname()
	if !errors.As(err, &le) || le.Owner.PID != os.Getpid() || le.Owner.Host != host || le.Dir != dir {
		t.Fatalf("second LockDir: %v, want a LockedError naming pid %d on %s", err, os.Getpid(), host)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Unlock: %v", err)
	}
	l2, err := LockDir(dir)
	if err != nil || l2.Stale != nil {
		t.Fatalf("LockDir after Unlock: %v (stale %v)", err, l2.Stale)
	}
	l2.Unlock()
}

// TestLockDirStale: the lock of a process killed with SIGKILL is refused while it lives and
// taken over, reported as stale with its pid, once it is dead.
func TestLockDirStale(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run", "^$")
	child.Env = append(os.Environ(), lockChildEnv+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("child: %q", line)
	}
	var le *LockedError
	if _, err := LockDir(dir); !errors.As(err, &le) || le.Owner.PID != child.Process.Pid {
		t.Fatalf("LockDir while the child holds it: %v, want its pid %d", err, child.Process.Pid)
	}
	child.Process.Kill()
	child.Wait()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after the owner died: %v", err)
	}
	defer l.Unlock()
	if l.Stale == nil || l.Stale.PID != child.Process.Pid {
		t.Fatalf("stale owner %+v, want pid %d", l.Stale, child.Process.Pid)
	}
}

// TestLockDirExclusive: goroutines locking and releasing one folder in a loop never hold it
// together (each open file description is its own flock owner, as separate processes are).
func TestLockDirExclusive(t *testing.T) {
	dir := t.TempDir()
	var holders, held, refused atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				l, err := LockDir(dir)
				if err != nil {
					var le *LockedError
					if !errors.As(err, &le) {
						t.Error(err)
						return
					}
					refused.Add(1)
					continue
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				held.Add(1)
				time.Sleep(10 * time.Microsecond) // a window for another holder to show
				holders.Add(-1)
				if err := l.Unlock(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if held.Load() == 0 {
		t.Fatal("no goroutine ever held the lock")
	}
	t.Logf("held %d times, refused %d times", held.Load(), refused.Load())
}

// TestCleanLeftovers removes the temporary files and folders of interrupted writes, and nothing
// else: not the lock, not outputs, not names that only look alike, not recent ones under an age.
func TestCleanLeftovers(t *testing.T) {
	dir := t.TempDir()
	files := []string{".checkpoint.safetensors.tmp-123", ".train.jsonl.tmp-9", lockName, "final", "x.tmp-1", ".a.tmp-", ".epoch-1.tmp-abc"}
	dirs := []string{".epoch-2.tmp-456", ".final.old-77", "epoch-1"}
	for _, f := range files {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	for _, d := range dirs {
		os.MkdirAll(filepath.Join(dir, d, "inner"), 0o755)
	}
	if got, err := CleanLeftovers(dir, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("with an age of an hour: removed %v (%v), want nothing", got, err)
	}
	got, err := CleanLeftovers(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{".checkpoint.safetensors.tmp-123": true, ".train.jsonl.tmp-9": true, ".epoch-2.tmp-456": true, ".final.old-77": true}
	if len(got) != len(want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	for _, name := range append(files, dirs...) {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != want[name] {
			t.Errorf("%s: removed %v, want %v", name, gone, want[name])
		}
	}
}
