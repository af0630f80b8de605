//go:build !linux

package proxy

import (
	"fmt"
	"syscall"
)

// setTransparent fails: TPROXY and IP_TRANSPARENT are Linux's.
func setTransparent(string, string, syscall.RawConn) error {
	return fmt.Errorf("%w: TPROXY is Linux only", ErrNoTransparent)
}
