//go:build !linux

package server

// diskHint finds nothing off Linux (diskhint_linux.go reads statfs).
func diskHint(string) string { return "" }
