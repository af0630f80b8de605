package wireguard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// This file holds the file policy the keys share with the CA's (package
// certs, dir.go), mirrored here because certs keeps its helpers to itself:
// directories that no one else may write, key files that no one else may
// read, files that are never overwritten and never seen half written.

// modulePath is this project's module; a key is never created inside a tree
// whose go.mod declares it.
const modulePath = "github.com/tlsresume/tlsresume"

// checkModes reports whether Unix permission bits mean anything here. On
// Windows Go reports synthetic modes (os package docs, "Chmod"); the
// profile directory's ACL protects the keys there.
func checkModes() bool { return runtime.GOOS != "windows" && runtime.GOOS != "plan9" }

// checkDir refuses a directory that others may write to (they could swap a
// key) or that is not one. It checks the bits itself rather than waiting
// for EACCES, so that root gets the same answer as everyone else.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("wireguard: reading key directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("wireguard: %s is not a directory", dir)
	}
	if mode := fi.Mode().Perm(); checkModes() && mode&0o022 != 0 {
		return fmt.Errorf("wireguard: directory %s is writable by other users (mode %04o), who could replace a key; run: chmod 700 %s", dir, mode, dir)
	}
	return nil
}

// readKeyFile reads a file holding a private key, refusing it when anyone
// but its owner may open it, as the CA key is refused.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wireguard: reading %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wireguard: reading %s: %w", path, err)
	}
	if mode := fi.Mode().Perm(); checkModes() && mode&0o077 != 0 {
		return nil, fmt.Errorf("wireguard: key file %s is accessible by other users (mode %04o); run: chmod 600 %s, and make a new key (delete the file) if they may have copied it", path, mode, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("wireguard: reading %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// mkdirPrivate creates dir (0700) if it is missing and then checks it.
func mkdirPrivate(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("wireguard: creating %s: %w", dir, err)
	}
	return checkDir(dir)
}

// writeNew writes data to path, 0600, only if path does not exist: a
// temporary file in the same directory (os.CreateTemp makes it 0600) is
// filled, synced and linked into place; link(2) fails with EEXIST instead
// of replacing. Where there are no hard links it falls back to rename(2)
// after a last existence check. A crash leaves no file or the whole file.
// An existing path yields an error wrapping fs.ErrExist.
func writeNew(path string, data []byte) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("wireguard: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wireguard: writing %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if _, serr := os.Lstat(path); errors.Is(err, fs.ErrExist) || serr == nil {
			return fmt.Errorf("wireguard: refusing to overwrite %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("wireguard: writing %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil { // make the entry durable; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// refuseSourceTree returns an error if dir is inside this project's source
// tree, found by walking up to a go.mod that declares modulePath, so that a
// key never lands where it could be committed.
func refuseSourceTree(dir string) error {
	for d := filepath.Clean(dir); ; {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && declaresModule(data) {
			return fmt.Errorf("wireguard: refusing to create keys in %s, inside the tlsresume source tree at %s; pass --ca-dir outside it", dir, d)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

// declaresModule reports whether go.mod content declares modulePath.
func declaresModule(gomod []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], "\"`") == modulePath
		}
	}
	return false
}
