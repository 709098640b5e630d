package atomicfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// lockName is the file that marks an output folder as in use.
const lockName = ".bear.lock"

// Owner describes the process holding a folder's lock (the lock file's content).
type Owner struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

func (o Owner) String() string {
	return fmt.Sprintf("`%s` (pid %d on %s, since %s)", o.Command, o.PID, o.Host, o.Since.Local().Format("2006-01-02 15:04:05"))
}

// LockedError is LockDir's error for a folder another live process holds.
type LockedError struct {
	Dir   string
	Owner Owner // zero when the lock file could not be read
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.Owner.PID != 0 {
		who = e.Owner.String()
	}
	return fmt.Sprintf("%s is in use by %s: two runs writing one folder would mix their outputs; wait for it to end, or choose another folder", e.Dir, who)
}

// DirLock is an exclusive lock on an output folder, held by this process until Unlock.
type DirLock struct {
	path string
	f    *os.File
	// Stale is the owner of a lock left behind by a process that ended without releasing it
	// (killed, or its machine rebooted); nil when there was none. The caller may say so.
	Stale *Owner
}

// LockDir creates dir if needed and takes its lock: dir/.bear.lock, flock(2)-locked for as long
// as this process holds it and naming the process. The kernel drops the flock when the process
// ends however it ends, so a lock file left by a dead process is recognised as stale and taken
// over; a live owner's lock is refused with a *LockedError naming it (pid, host, command).
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockName)
	for range 100 { // a retry follows only a lock released by its owner in the meantime
		l, retry, err := tryLock(dir, path)
		if !retry {
			return l, err
		}
	}
	return nil, fmt.Errorf("lock %s: the lock file keeps being replaced", path)
}

// tryLock makes one attempt; retry reports that the file it locked was removed or replaced by a
// releasing owner between its open and its flock.
func tryLock(dir, path string) (l *DirLock, retry bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := readOwner(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, &LockedError{Dir: dir, Owner: owner}
		}
		return nil, false, fmt.Errorf("lock %s: the file system refuses file locks (%w): bear cannot make sure that no other run writes there", dir, err)
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, true, nil
	}
	l = &DirLock{path: path, f: f}
	if prev, err := readOwner(f); err == nil && prev.PID != 0 {
		l.Stale = &prev
	}
	if err := writeOwner(f); err != nil {
		l.Unlock()
		return nil, false, fmt.Errorf("lock %s: %w", dir, err)
	}
	return l, false, nil
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func readOwner(f *os.File) (Owner, error) {
	var o Owner
	data, err := os.ReadFile(f.Name())
	if err == nil && len(data) > 0 {
		err = json.Unmarshal(data, &o)
	}
	return o, err
}

func writeOwner(f *os.File) error {
	host, _ := os.Hostname()
	js, err := json.Marshal(Owner{PID: os.Getpid(), Host: host, Command: commandLine(), Since: time.Now()})
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(append(js, '\n'), 0); err != nil {
		return err
	}
	return f.Sync()
}

// commandLine is this process's command, program name without its folder, for the message a
// second run gets.
func commandLine() string {
	args := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	s := strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Unlock releases the lock and removes the lock file (first, so that a process that opened it in
// the meantime sees the file gone and starts over).
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// leftover matches the temporary names of this package's writes (".NAME.tmp-123", ".NAME.old-123").
var leftover = regexp.MustCompile(`^\..+\.(tmp|old)-[0-9]+$`)

// CleanLeftovers removes, in dir (not below), the temporary files and folders of writes that a
// kill interrupted before their rename (with a whole checkpoint, gigabytes), if their last
// modification is older than age; it returns their names. Call it on a folder whose lock this
// process holds (age 0), or with an age beyond any write in progress on a shared folder.
func CleanLeftovers(dir string, age time.Duration) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		info, err := e.Info()
		if !leftover.MatchString(e.Name()) || err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return removed, fmt.Errorf("remove the leftover %s: %w", filepath.Join(dir, e.Name()), err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// ClaimOutput makes an output folder ready for a job before any work: out must not be, hold or
// lie inside one of inputs (CheckDisjoint; flag names out in the messages), it is created and
// locked (LockDir), and the leftovers of writes a kill interrupted in it are removed
// (CleanLeftovers). note, when not nil, is told of a stale lock taken over and of removed
// leftovers. The caller unlocks the folder when the job ends.
func ClaimOutput(flag, out string, inputs []string, note func(format string, args ...any)) (*DirLock, error) {
	if note == nil {
		note = func(string, ...any) {}
	}
	if err := CheckDisjoint(flag, out, inputs...); err != nil {
		return nil, err
	}
	lock, err := LockDir(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if lock.Stale != nil {
		note("%s was left locked by %s, which is no longer running", out, lock.Stale)
	}
	removed, err := CleanLeftovers(out, 0)
	if len(removed) > 0 {
		note("removed %d leftovers of writes interrupted in %s: %s", len(removed), out, strings.Join(removed, ", "))
	}
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	return lock, nil
}
