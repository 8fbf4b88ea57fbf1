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

// killCycles is how many kills a series makes: a short series in the
// README's test command, the long one when PAIRGATE_LONG_TESTS=1 (.ci/run
// sets it for a second run after the README's command).
func killCycles() (cycles, limit int) {
	if os.Getenv("PAIRGATE_LONG_TESTS") == "1" {
		return 100, 300
	}
	return 12, 60
}

// killTimer chooses when to kill a helper so that kills land on both sides
// of the work's commit whatever the machine's speed: it starts from the
// work's duration measured in this process (the helper is the same binary)
// and moves the kill later after a kill that came too early, earlier after
// one that came too late, with jitter. No speed is assumed or asserted.
type killTimer struct {
	delay time.Duration
}

func newKillTimer(t *testing.T, setup, work func(s *Store)) *killTimer {
	s := openStore(t, newClock())
	setup(s)
	start := time.Now()
	work(s)
	return &killTimer{delay: time.Since(start) / 2}
}

// next returns the next delay, jittered ±50%.
func (k *killTimer) next() time.Duration {
	return k.delay/2 + time.Duration(rand.Int64N(int64(k.delay)+1))
}

// landed adjusts the delay after a kill that came before (false) or after
// (true) the work's commit.
func (k *killTimer) landed(after bool) {
	if after {
		k.delay = max(k.delay*2/3, 100*time.Microsecond)
	} else {
		k.delay = k.delay * 3 / 2
	}
}

// killSeries runs cycles of one killed helper until it has made its cycles
// and seen kills on both sides of the commit, or reaches its limit. cycle
// reports which side a kill landed on.
func killSeries(t *testing.T, k *killTimer, cycle func(c int, delay time.Duration) (after bool)) (before, after int) {
	cycles, limit := killCycles()
	for c := 0; c < limit && (c < cycles || before == 0 || after == 0); c++ {
		if cycle(c, k.next()) {
			after++
			k.landed(true)
		} else {
			before++
			k.landed(false)
		}
	}
	// Kills must have landed on both sides of the commit, else the series
	// proved nothing about the middle.
	if before == 0 || after == 0 {
		t.Fatalf("after %d kills, %d landed before the commit and %d after: never on both sides", before+after, before, after)
	}
	return before, after
}

func TestKilledImportIsAllOrNothing(t *testing.T) {
	k := newKillTimer(t, func(*Store) {}, func(s *Store) {
		s.Import(context.Background(), crashState(), ImportMerge, false, Origin{Actor: "import"})
	})
	none, all := killSeries(t, k, func(c int, delay time.Duration) bool {
		dir := t.TempDir()
		cmd := startHelper(t, "import", dir)
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		integrityOK(t, filepath.Join(dir, "pairing.sqlite"))
		s := openStoreAt(t, dir, newClock())
		defer s.Close()
		counts, err := s.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts.Paired != 0 && counts.Paired != crashNodes {
			t.Fatalf("cycle %d: a killed import left %d of %d nodes", c, counts.Paired, crashNodes)
		}
		if counts.Paired == crashNodes {
			if v, _ := s.Verify(context.Background(), "n7", "token-7"); !v.OK {
				t.Fatalf("cycle %d: an imported token does not verify", c)
			}
		}
		return counts.Paired == crashNodes
	})
	t.Logf("%d kills: %d without the import, %d with all of it", none+all, none, all)
}

func TestKilledExportLeavesWholeFiles(t *testing.T) {
	k := newKillTimer(t, func(s *Store) {
		s.Import(context.Background(), crashState(), ImportReplace, false, Origin{Actor: "import"})
	}, func(s *Store) {
		s.Export(context.Background(), t.TempDir(), false)
	})
	sawOld, sawNew := killSeries(t, k, func(c int, delay time.Duration) bool {
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
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		fresh := false
		for name, newer := range map[string][]byte{PairedFile: want.Paired, PendingFile: want.Pending} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("cycle %d: %s: %v", c, name, err)
			}
			if !bytes.Equal(got, old[name]) && !bytes.Equal(got, newer) {
				t.Fatalf("cycle %d: %s is neither the old nor the new file (%d bytes)", c, name, len(got))
			}
			if name == PairedFile {
				fresh = bytes.Equal(got, newer)
			}
			paired, pending := got, []byte(nil)
			if name == PendingFile {
				paired, pending = nil, got
			}
			if _, err := ReadLegacy(paired, pending); err != nil {
				t.Fatalf("cycle %d: %s does not parse: %v", c, name, err)
			}
		}
		return fresh
	})
	t.Logf("%d kills: paired.json old %d times, new %d times", sawOld+sawNew, sawOld, sawNew)
}
