//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wireguard

// lockFile is a no-op where flock(2) is missing: devices created at the
// same moment by two processes may then be given the same address, which
// Store.Devices reports so that one can be deleted.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
