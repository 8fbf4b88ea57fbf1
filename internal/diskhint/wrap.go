// Package diskhint says what about a directory's filesystem explains a
// failure to open a store there: no space, mounted read-only, or not
// writable by this process.
package diskhint

import "fmt"

// Wrap adds what Hint finds about dir's filesystem to err (nil stays nil).
func Wrap(err error, dir string) error {
	if err == nil {
		return nil
	}
	if hint := Hint(dir); hint != "" {
		return fmt.Errorf("%w (%s)", err, hint)
	}
	return err
}
