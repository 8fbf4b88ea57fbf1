// Package syncbuf is a byte buffer safe for concurrent writes: the sink
// the tests give loggers and child processes, read while they write.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it from any number of goroutines.
// The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
