//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package wireguard

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on path, creating it 0600, so that
// two processes creating devices choose different tunnel addresses. The
// lock goes with the process if it dies. unlock releases it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wireguard: opening lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wireguard: locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}
