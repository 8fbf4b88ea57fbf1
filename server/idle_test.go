package server

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/config"
)

const serverHelperEnv = "PAIRGATE_TEST_SERVER_DIR"

// serverHelper serves one profile (token testToken) in dir until SIGTERM,
// logging its address to stderr.
func serverHelper(dir string) int {
	p := config.NewProfile("default", dir)
	p.Token = testToken
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	prof, err := OpenProfile(context.Background(), p, log, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer prof.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// SIGUSR1: report where the memory is, for the benchmark's log.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Fprintf(os.Stderr, "memstats heapInuse=%dMB stackInuse=%dMB sys=%dMB goroutines=%d\n",
				m.HeapInuse>>20, m.StackInuse>>20, m.Sys>>20, runtime.NumGoroutine())
		}
	}()
	// 10,000 sessions from one address: past the default bound.
	cfg := config.Config{Listen: "127.0.0.1:0", Profiles: []config.Profile{p}, MaxConnsPerAddress: 20_000}
	if err := New(cfg, []*Profile{prof}, log, Options{}).Run(ctx); err != nil {
		return 1
	}
	return 0
}

// procStatusKB is a kB field of /proc/PID/status (VmRSS, VmHWM), or -1.
func procStatusKB(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// startServerProcess runs this binary as serverHelper on a fresh directory
// and returns it and its address once it listens; its other stderr lines
// go to lines (dropped when nobody reads them). It is stopped (SIGTERM)
// when the test ends.
func startServerProcess(tb testing.TB) (cmd *exec.Cmd, addr string, lines <-chan string) {
	tb.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverHelperEnv+"="+tb.TempDir())
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	found := make(chan string, 1)
	rest := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			out := rest
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				out = found
			}
			select {
			case out <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-found:
		return cmd, listeningRE.FindStringSubmatch(line)[1], rest
	case <-time.After(30 * time.Second):
		tb.Fatal("server process did not listen")
		return nil, "", nil
	}
}

// BenchmarkIdleConnections holds 10,000 authenticated operator sessions
// open against a server in its own process and reports that process's
// resident memory (the target is 10,000 at ≤ 400 MB). Run with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 10_000
	cmd, addr, lines := startServerProcess(b)
	url := "ws://" + addr + "/"
	before := procStatusKB(cmd.Process.Pid, "VmRSS")
	open := make([]*websocket.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	b.ResetTimer()
	for range b.N {
		for len(open) < conns {
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				b.Fatalf("connection %d: %v", len(open), err)
			}
			c.ReadMessage()
			c.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": connectFrame("operator", testToken, nil)})
			if _, _, err := c.ReadMessage(); err != nil {
				b.Fatalf("hello %d: %v", len(open), err)
			}
			open = append(open, c)
		}
	}
	b.StopTimer()
	time.Sleep(2 * time.Second) // let the server settle
	after := procStatusKB(cmd.Process.Pid, "VmRSS")
	cmd.Process.Signal(syscall.SIGUSR1)
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case line := <-lines:
			if strings.HasPrefix(line, "memstats ") {
				b.Log(line)
				done = true
			}
		case <-timeout:
			done = true
		}
	}
	b.ReportMetric(float64(after)/1024, "server-RSS-MB")
	b.ReportMetric(float64(after-before)/conns, "KB/conn")
}

// A session that sends nothing, pongs included, for the idle timeout is
// closed, and the close says why: a tester's stalled sessions got a bare
// 1000.
func TestSilentSessionIsToldWhyItIsClosed(t *testing.T) {
	ts := startServer(t, func(s *serverSetup) { s.opts.SessionIdleTimeout = 300 * time.Millisecond })
	c := ts.operator(t, "/", testToken)
	if code := c.waitClosed(10 * time.Second); code != 1000 {
		t.Fatalf("closed %d, want 1000", code)
	}
	if reason, _ := c.closeText.Load().(string); reason != "nothing received for 300ms (pings unanswered)" {
		t.Fatalf("close reason %q", reason)
	}
}
