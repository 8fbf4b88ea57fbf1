package server

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// peakKB is the server process's peak resident memory (VmHWM).
func peakKB(t *testing.T, pid int) int {
	t.Helper()
	kb := procStatusKB(pid, "VmHWM")
	if kb < 0 {
		t.Fatalf("no VmHWM in /proc/%d/status: no /proc, or the server process has died", pid)
	}
	return kb
}

// deepBodies returns n bodies of exactly maxBody bytes nested as deep as
// such a body can be: half unclosed arrays (depth 65,536), half balanced
// arrays inside the verify fields (depth ~32,000).
func deepBodies(n int) [][]byte {
	unclosed := bytes.Repeat([]byte("["), maxBody)
	head := `{"nodeId":"n","token":`
	depth := (maxBody - len(head) - len("0}")) / 2
	balanced := []byte(head + strings.Repeat("[", depth) + "0" + strings.Repeat("]", depth) + "}")
	out := make([][]byte, n)
	for i := range out {
		out[i] = unclosed
		if i%2 == 1 {
			out[i] = balanced
		}
	}
	return out
}

// TestDeepBodiesCannotExhaustMemory sends 200 bodies of 64 KiB, nested as
// deep as they can be, at once to the unauthenticated POST …/verify, and
// asserts that the server's peak resident memory stays under 256 MiB and
// that it still answers /readyz. The server runs as a child process (this
// binary, serverHelper): its VmHWM is the kernel's own record of its peak,
// counting stacks, GC slack and everything the runtime holds, and not the
// client's 12.5 MiB of bodies; sampling runtime.MemStats in process could
// miss a short peak and would mix both sides in one heap.
func TestDeepBodiesCannotExhaustMemory(t *testing.T) {
	const bodies = 200
	const limitKB = 256 << 10
	cmd, addr, _ := startServerProcess(t)
	url := "http://" + addr
	before := peakKB(t, cmd.Process.Pid)

	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: bodies}}
	defer client.CloseIdleConnections()
	start := make(chan struct{})
	statuses := make(chan string, bodies)
	var wg sync.WaitGroup
	for _, body := range deepBodies(bodies) {
		wg.Go(func() {
			<-start
			resp, err := client.Post(url+"/api/v1/profiles/default/verify", "application/json", bytes.NewReader(body))
			if err != nil {
				statuses <- err.Error()
				return
			}
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusBadRequest && !bytes.Contains(msg, []byte("nested deeper than 64 levels")) {
				statuses <- "400 without the depth named: " + string(msg)
				return
			}
			statuses <- strconv.Itoa(resp.StatusCode)
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	refused := 0
	for s := range statuses {
		switch s {
		case "400":
			refused++
		case "429": // a failed-auth limiter may count them; refused either way
		default:
			t.Errorf("a deep body got %s, want 400", s)
		}
	}

	peak := peakKB(t, cmd.Process.Pid)
	t.Logf("%d deep bodies: %d refused with 400; server peak RSS %d MiB (%d MiB before)", bodies, refused, peak>>10, before>>10)
	if peak >= limitKB {
		t.Fatalf("server peak RSS %d MiB, want < 256 MiB", peak>>10)
	}
	if refused == 0 {
		t.Fatal("no deep body was refused with 400: the test did not reach the JSON reader")
	}
	resp, err := client.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("/readyz after the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after the flood: %d", resp.StatusCode)
	}
}
