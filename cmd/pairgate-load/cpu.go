package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter reads the CPU time the server (its /metrics'
// process_cpu_seconds_total) and this process have used, so that a run
// can say what each operation cost and how much of the machine each side
// took: on one machine the load tool's CPU is the server's loss.
type cpuMeter struct {
	metrics string // the server's /metrics address
}

// cpuReading is the CPU seconds used so far; server is negative when the
// server's metrics could not be read.
type cpuReading struct{ server, self float64 }

func (m cpuMeter) read(ctx context.Context) cpuReading {
	r := cpuReading{server: -1, self: selfCPU()}
	if s, err := serverCPU(ctx, m.metrics); err == nil {
		r.server = s
	}
	return r
}

// report prints the CPU used between two readings: in all, per op (ops
// done meanwhile), and in cores (over elapsed).
func (m cpuMeter) report(w io.Writer, from, to cpuReading, ops int, elapsed time.Duration) {
	part := func(name string, secs float64) string {
		if secs < 0 || ops == 0 {
			return name + " n/a"
		}
		return fmt.Sprintf("%s %s/op (%.2f cores)", name, round(time.Duration(secs/float64(ops)*float64(time.Second))), secs/elapsed.Seconds())
	}
	server := -1.0
	if from.server >= 0 && to.server >= 0 {
		server = to.server - from.server
	}
	fmt.Fprintf(w, "cpu      %s  %s\n", part("server", server), part("load tool", to.self-from.self))
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// serverCPU reads process_cpu_seconds_total from the server's metrics.
func serverCPU(ctx context.Context, url string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, res.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(res.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s has no process_cpu_seconds_total", url)
}
