package server

import "fmt"

// withDiskHint adds diskHint's finding about dir's filesystem to err.
func withDiskHint(err error, dir string) error {
	if hint := diskHint(dir); hint != "" {
		return fmt.Errorf("%w (%s)", err, hint)
	}
	return err
}
