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
	if err := New(config.Config{Listen: "127.0.0.1:0", Profiles: []config.Profile{p}}, []*Profile{prof}, log, Options{}).Run(ctx); err != nil {
		return 1
	}
	return 0
}

func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// BenchmarkIdleConnections holds 10,000 authenticated operator sessions
// open against a server in its own process and reports that process's
// resident memory (the target is 10,000 at ≤ 400 MB). Run with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 10_000
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverHelperEnv+"="+b.TempDir())
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	addr := make(chan string, 1)
	stats := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if strings.HasPrefix(sc.Text(), "memstats ") {
				stats <- sc.Text()
			}
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "ws://" + a + "/"
	case <-time.After(30 * time.Second):
		b.Fatal("server did not start")
	}
	before := rssKB(cmd.Process.Pid)
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
	after := rssKB(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case line := <-stats:
		b.Log(line)
	case <-time.After(5 * time.Second):
	}
	b.ReportMetric(float64(after)/1024, "server-RSS-MB")
	b.ReportMetric(float64(after-before)/conns, "KB/conn")
}
