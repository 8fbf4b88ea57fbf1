//go:build !linux

package server

// diskHint finds nothing off Linux (diskhint_linux.go reads statfs).
func diskHint(string) string { return "" }

// unmounted finds nothing off Linux (diskhint_linux.go reads /etc/fstab
// and /proc/self/mountinfo).
func unmounted(string) string { return "" }
