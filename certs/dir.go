package certs

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

// EnvHome names the environment variable that overrides the default CA
// directory. The --ca-dir flag, passed to [Dir] as override, wins over it.
const EnvHome = "TLSRESUME_HOME"

// modulePath is this project's module; [Init] refuses to create a key inside
// a tree whose go.mod declares it, so a key never lands in the source tree.
const modulePath = "github.com/tlsresume/tlsresume"

// Dir returns the absolute CA directory: override if it is not empty (the
// --ca-dir flag), else $TLSRESUME_HOME if set, else
// os.UserConfigDir()/tlsresume (~/.config/tlsresume on Linux,
// ~/Library/Application Support/tlsresume on macOS, %AppData%\tlsresume on
// Windows). It does not create the directory.
func Dir(override string) (string, error) {
	dir := override
	if dir == "" {
		dir = os.Getenv(EnvHome)
	}
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("certs: finding the CA directory: %w; set %s or pass --ca-dir", err, EnvHome)
		}
		dir = filepath.Join(base, "tlsresume")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("certs: finding the CA directory: %w", err)
	}
	return abs, nil
}

// checkModes reports whether the process should look at Unix permission bits.
// On Windows, Go reports synthetic modes (0666 or 0444) and os.Chmod only
// toggles the read-only attribute (os package docs, "Chmod"), so the checks
// would refuse every key; the profile directory's ACL protects it there.
func checkModes() bool { return runtime.GOOS != "windows" && runtime.GOOS != "plan9" }

// checkDir refuses a CA directory that other users can write to (they could
// swap the CA) or that lacks the owner permissions in need (0500 to load,
// 0700 to create files). It checks the bits itself rather than waiting for
// EACCES so that root, who bypasses permissions, gets the same answer as
// everyone else. A missing directory yields an error wrapping fs.ErrNotExist.
func checkDir(dir string, need fs.FileMode) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("certs: reading CA directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("certs: CA directory %s is not a directory; pass --ca-dir with a directory", dir)
	}
	if !checkModes() {
		return nil
	}
	mode := fi.Mode().Perm()
	if mode&0o022 != 0 {
		return fmt.Errorf("certs: CA directory %s is writable by other users (mode %04o), who could replace the CA; run: chmod 700 %s", dir, mode, dir)
	}
	if mode&need != need {
		return fmt.Errorf("certs: CA directory %s lacks owner permissions (mode %04o, need %04o); run: chmod 700 %s", dir, mode, need, dir)
	}
	return nil
}

// checkKeyMode refuses a key file that anyone but its owner may open.
func checkKeyMode(path string, fi fs.FileInfo) error {
	if !checkModes() {
		return nil
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("certs: CA key %s is accessible by other users (mode %04o); run: chmod 600 %s, and make a new CA if they may have copied it", path, mode, path)
	}
	return nil
}

// writeNew writes data to path atomically and only if path does not exist:
// it fills a temporary file in the same directory (os.CreateTemp makes it
// 0600, so a key is never readable mid-write), syncs it, and links it into
// place. link(2) fails with EEXIST instead of replacing, so two concurrent
// `ca init` runs cannot overwrite each other's key; where the file system has
// no hard links (FAT, some network mounts) it falls back to rename(2) after a
// last existence check. A crash leaves either no file or the whole file.
func writeNew(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		// After a successful link the name is a second link to the same
		// inode; after a rename it is gone. Either way remove it quietly.
		_ = os.Remove(tmp)
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("certs: refusing to overwrite %s: %w", path, fs.ErrExist)
		}
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("certs: refusing to overwrite %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("certs: writing %s: %w", path, err)
		}
	}
	syncDir(dir)
	return nil
}

// syncDir makes a new directory entry durable. It is best effort: Windows
// cannot open a directory for syncing, and the data itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// refuseSourceTree returns an error if dir is inside this project's source
// tree, found by walking up to a go.mod that declares modulePath.
func refuseSourceTree(dir string) error {
	for d := filepath.Clean(dir); ; {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && declaresModule(data, modulePath) {
			return fmt.Errorf("certs: refusing to create a CA key in %s, inside the tlsresume source tree at %s; pass --ca-dir outside it", dir, d)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

// declaresModule reports whether go.mod content declares module path.
func declaresModule(gomod []byte, path string) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`+"`") == path
		}
	}
	return false
}
