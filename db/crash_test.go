package db

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashHelperEnv = "PAIRGATE_CRASH_HELPER"

// crashNodes is the size of the state the helper imports: enough that an
// import takes some milliseconds, so kills land inside it.
const crashNodes = 300

func crashState() LegacyState {
	var b strings.Builder
	b.WriteString("{")
	for i := range crashNodes {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"n%d":{"nodeId":"n%d","token":"token-%d","displayName":"Node %d","createdAtMs":%d,"approvedAtMs":%d}`, i, i, i, i, i+1, i+1)
	}
	b.WriteString("}")
	st, err := ReadLegacy([]byte(b.String()), nil)
	if err != nil {
		panic(err)
	}
	return st
}

// crashHelper is the process that gets killed: it imports (or exports
// over and over) in the directory named by PAIRGATE_CRASH_DIR.
func crashHelper(mode string) int {
	dir := os.Getenv("PAIRGATE_CRASH_DIR")
	s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "pairing.sqlite"), KeyPath: filepath.Join(dir, "pairing.key"), Migrate: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600)
	switch mode {
	case "import":
		if _, err := s.Import(context.Background(), crashState(), ImportMerge, false, Origin{Actor: "import"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	case "export":
		for {
			if _, err := s.Export(context.Background(), dir, false); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
	}
	return 0
}

// startHelper starts this test binary as the helper and waits until its
// store is open.
func startHelper(t *testing.T, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+mode, "PAIRGATE_CRASH_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper did not start: %s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func integrityOK(t *testing.T, path string) {
	t.Helper()
	conn, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var res string
	if err := conn.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check = %q %v", res, err)
	}
}

// killWindow times work in this process (the helper is the same binary,
// so as fast or as slow) and returns a window half as long again: kills
// drawn from it land before, during and after the work.
func killWindow(t *testing.T, setup, work func(s *Store)) time.Duration {
	s := openStore(t, newClock())
	setup(s)
	start := time.Now()
	work(s)
	return time.Since(start) * 3 / 2
}

func TestKilledImportIsAllOrNothing(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	window := killWindow(t, func(*Store) {}, func(s *Store) {
		s.Import(context.Background(), crashState(), ImportMerge, false, Origin{Actor: "import"})
	})
	seen := map[int]int{}
	for c := range cycles {
		dir := t.TempDir()
		cmd := startHelper(t, "import", dir)
		time.Sleep(time.Duration(rand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		integrityOK(t, filepath.Join(dir, "pairing.sqlite"))
		s := openStoreAt(t, dir, newClock())
		counts, err := s.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts.Paired != 0 && counts.Paired != crashNodes {
			t.Fatalf("cycle %d: a killed import left %d of %d nodes", c, counts.Paired, crashNodes)
		}
		seen[counts.Paired]++
		if counts.Paired == crashNodes {
			if v, _ := s.Verify(context.Background(), "n7", "token-7"); !v.OK {
				t.Fatalf("cycle %d: an imported token does not verify", c)
			}
		}
		s.Close()
	}
	t.Logf("after %d kills within %v: %d without the import, %d with all of it", cycles, window, seen[0], seen[crashNodes])
	// Kills must have landed on both sides of the commit, else this run
	// proved nothing about the middle.
	if cycles >= 50 && (seen[0] == 0 || seen[crashNodes] == 0) {
		t.Fatalf("all %d kills landed on one side of the import", cycles)
	}
}

func TestKilledExportLeavesWholeFiles(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	window := killWindow(t, func(s *Store) {
		s.Import(context.Background(), crashState(), ImportReplace, false, Origin{Actor: "import"})
	}, func(s *Store) {
		s.Export(context.Background(), t.TempDir(), false)
	})
	var sawOld, sawNew int
	for c := range cycles {
		dir := t.TempDir()
		// The files as they were before: whole, and different.
		old := map[string][]byte{PairedFile: []byte(`{"old":{"nodeId":"old","token":"t","createdAtMs":1,"approvedAtMs":1}}`), PendingFile: []byte(`{}`)}
		for name, b := range old {
			os.WriteFile(filepath.Join(dir, name), b, 0o600)
		}
		s := openStoreAt(t, dir, newClock())
		if _, err := s.Import(context.Background(), crashState(), ImportReplace, false, Origin{Actor: "import"}); err != nil {
			t.Fatal(err)
		}
		want, _ := s.LegacyFiles(context.Background(), false)
		s.Close()

		cmd := startHelper(t, "export", dir)
		time.Sleep(time.Duration(rand.Int64N(int64(window))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for name, fresh := range map[string][]byte{PairedFile: want.Paired, PendingFile: want.Pending} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("cycle %d: %s: %v", c, name, err)
			}
			switch {
			case bytes.Equal(got, fresh) && name == PairedFile:
				sawNew++
			case bytes.Equal(got, old[name]) && name == PairedFile:
				sawOld++
			case !bytes.Equal(got, old[name]) && !bytes.Equal(got, fresh):
				t.Fatalf("cycle %d: %s is neither the old nor the new file (%d bytes)", c, name, len(got))
			}
			paired, pending := got, []byte(nil)
			if name == PendingFile {
				paired, pending = nil, got
			}
			if _, err := ReadLegacy(paired, pending); err != nil {
				t.Fatalf("cycle %d: %s does not parse: %v", c, name, err)
			}
		}
	}
	t.Logf("after %d kills within %v: paired.json old %d times, new %d times", cycles, window, sawOld, sawNew)
	if cycles >= 50 && (sawOld == 0 || sawNew == 0) {
		t.Fatalf("all %d kills landed on one side of the first export", cycles)
	}
}
