//go:build !linux

package diskhint

// Hint finds nothing off Linux (diskhint_linux.go reads statfs).
func Hint(string) string { return "" }
