package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/server"
)

func TestRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://192.0.2.1:18789", "--token", "t"}, "not a loopback address"},
		{[]string{"--url", "http://127.0.0.1:1"}, "--token"},
		{[]string{"--token", "t", "--mode", "nope"}, `--mode "nope": want verify, approve, ws-cycle or ws-verify`},
		{[]string{"--token", "t", "--rate", "0"}, "must be positive"},
	} {
		err := run(context.Background(), tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// syncBuf collects the server's log.
type syncBuf struct {
	ch chan string
}

func (b *syncBuf) Write(p []byte) (int, error) {
	select {
	case b.ch <- string(p):
	default:
	}
	return len(p), nil
}

func TestLoadsARealServer(t *testing.T) {
	dir := t.TempDir()
	p := config.NewProfile("default", filepath.Join(dir, "state"))
	p.Token = "load-test-token"
	cfg := config.Config{Listen: "127.0.0.1:0", Profiles: []config.Profile{p}}
	logs := &syncBuf{ch: make(chan string, 100)}
	log := slog.New(slog.NewTextHandler(logs, nil))
	prof, err := server.OpenProfile(context.Background(), p, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prof.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.New(cfg, []*server.Profile{prof}, log, server.Options{}).Run(ctx) }()
	defer func() { cancel(); <-done }()
	addr := ""
	re := regexp.MustCompile(`msg=listening addr=(\S+)`)
	for addr == "" {
		select {
		case line := <-logs.ch:
			if m := re.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server did not listen")
		}
	}
	for _, mode := range []string{"verify", "approve"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"--url", "http://" + addr, "--token", "load-test-token",
			"--mode", mode, "--rate", "50", "--duration", "200ms"}, &out)
		if err != nil {
			t.Fatal(err)
		}
		// vegeta paces 10 requests over 200 ms; a busy machine may send
		// fewer within that time. Every one sent must be answered 200.
		if !strings.Contains(out.String(), "success 100.00%") || !regexp.MustCompile(`status   200×([1-9]|10)\n`).MatchString(out.String()) {
			t.Fatalf("%s report:\n%s", mode, out.String())
		}
	}
	// A connection that breaks mid-run (here a proxy cuts each of the
	// first two after 16 KiB) costs the call in flight; the worker
	// connects again and the run goes on.
	var out bytes.Buffer
	args := []string{"--url", "http://" + cuttingProxy(t, addr, 2, 16<<10), "--token", "load-test-token",
		"--duration", "1m", "--mode", "ws-cycle", "--clients", "2", "--count", "40"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("through a proxy that cuts: %v\n%s", err, out.String())
	}
	var ok, failed int
	if m := regexp.MustCompile(`cycles +(\d+) ok .* errors (\d+)`).FindStringSubmatch(out.String()); m != nil {
		ok, _ = strconv.Atoi(m[1])
		failed, _ = strconv.Atoi(m[2])
	}
	if ok < 38 || failed < 1 || ok+failed != 40 {
		t.Fatalf("through a proxy that cuts two connections once, want 38–39 cycles ok and 1–2 errors:\n%s", out.String())
	}

	// The WebSocket modes: a fixed count, every call answered.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--mode", "ws-cycle", "--clients", "2", "--count", "20"}, []string{"cycles   20 ok", "errors 0"}},
		{[]string{"--mode", "ws-verify", "--clients", "2", "--nodes", "5", "--count", "40", "--cycle-clients", "1"}, []string{"verifies 40 ok", "errors 0\nlatency", "cycles  "}},
	} {
		var out bytes.Buffer
		args := append([]string{"--url", "http://" + addr, "--token", "load-test-token", "--duration", "1m"}, c.args...)
		if err := run(context.Background(), args, &out); err != nil {
			t.Fatal(err)
		}
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%v report lacks %q:\n%s", c.args, want, out.String())
			}
		}
		// The server here is this process: its metrics are readable.
		if !regexp.MustCompile(`\ncpu +server [0-9.]+[µm]?s/op \([0-9]+\.[0-9]{2} cores\)  load tool [0-9.]+[µm]?s/op \([0-9]+\.[0-9]{2} cores\)\n`).MatchString(out.String()) {
			t.Fatalf("%v report lacks the CPU each side used:\n%s", c.args, out.String())
		}
	}
}

// The CPU line reads the server's process_cpu_seconds_total, and says
// n/a when it cannot.
func TestServerCPU(t *testing.T) {
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n")
	}))
	defer metrics.Close()
	if got, err := serverCPU(t.Context(), metrics.URL+"/metrics"); err != nil || got != 12.5 {
		t.Fatalf("serverCPU = %v, %v; want 12.5", got, err)
	}
	if _, err := serverCPU(t.Context(), metrics.URL+"/elsewhere"); err == nil {
		t.Fatal("serverCPU of a 404 gave no error")
	}
	var out bytes.Buffer
	m := cpuMeter{}
	m.report(&out, cpuReading{server: 10, self: 1}, cpuReading{server: 12, self: 1.5}, 1000, 2*time.Second)
	m.report(&out, cpuReading{server: -1, self: 1}, cpuReading{server: 12, self: 1.5}, 1000, 2*time.Second)
	want := "cpu      server 2ms/op (1.00 cores)  load tool 500µs/op (0.25 cores)\ncpu      server n/a  load tool 500µs/op (0.25 cores)\n"
	if out.String() != want {
		t.Fatalf("report:\n%s\nwant:\n%s", out.String(), want)
	}
}

// cuttingProxy forwards 127.0.0.1 connections to target, and closes each
// of the first cuts of them once the server has sent it after bytes.
func cuttingProxy(t *testing.T, target string, cuts, after int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := int64(0); ; n++ {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			go func() { io.Copy(server, client); server.Close() }()
			go func(cut bool) {
				if cut {
					io.CopyN(client, server, after)
				} else {
					io.Copy(client, server)
				}
				client.Close()
				server.Close()
			}(n < cuts)
		}
	}()
	return ln.Addr().String()
}
