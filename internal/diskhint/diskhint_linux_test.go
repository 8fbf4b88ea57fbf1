package diskhint

import (
	"errors"
	"strings"
	"testing"
)

// A healthy, writable directory gets no hint, and the error is kept as
// it is; /proc (a filesystem with no free blocks, where nothing can be
// created) gets one, added after the error.
func TestDiskHint(t *testing.T) {
	base := errors.New("open pairing.sqlite: disk I/O error")
	if err := Wrap(base, t.TempDir()); err != base {
		t.Fatalf("a healthy directory: %v", err)
	}
	err := Wrap(base, "/proc")
	if !errors.Is(err, base) || !strings.Contains(err.Error(), "the filesystem holding /proc has 0 KiB free") {
		t.Fatalf("/proc: %v", err)
	}
	// A directory still to be made is judged by the one it is made in (a
	// re-trial got "not writable …: no such file or directory").
	if err := Wrap(base, "/proc/no-such-dir/nodes"); !strings.Contains(err.Error(), "the filesystem holding /proc has 0 KiB free") {
		t.Fatalf("a directory under /proc still to be made: %v", err)
	}
}
