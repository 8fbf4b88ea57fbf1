package cli

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of the given size and returns its
// terminal side (what a shell's stdout would be).
func openPTY(t *testing.T, cols, rows uint16) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
	return tty
}

func TestTerminalWidth(t *testing.T) {
	noEnv := func(string) string { return "" }
	columns := func(v string) func(string) string {
		return func(k string) string {
			if k == "COLUMNS" {
				return v
			}
			return ""
		}
	}
	file, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	wide, narrow := openPTY(t, 77, 24), openPTY(t, 12, 24)
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		out    *os.File
		want   int
	}{
		{"terminal", noEnv, wide, 77},
		{"$COLUMNS wins over the terminal", columns("150"), wide, 150},
		{"a tiny $COLUMNS is ignored", columns("10"), wide, 77},
		{"a tiny terminal is ignored", noEnv, narrow, defaultWidth},
		{"a file is not a terminal", noEnv, file, defaultWidth},
		{"$COLUMNS for a file", columns("90"), file, 90},
	} {
		if got := terminalWidth(Env{Getenv: tc.getenv}, tc.out); got != tc.want {
			t.Errorf("%s: width %d, want %d", tc.name, got, tc.want)
		}
	}
}
