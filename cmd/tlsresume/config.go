package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// applyConfigFile sets every flag named in a YAML file that was not set on
// the command line: flags win.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := readConfigFile(path)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("--config %s: %v", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for k, v := range m {
		if fs.Lookup(k) == nil || k == "config" {
			return fmt.Errorf("--config %s: unknown key %q (keys are the flag names)", path, k)
		}
		if set[k] {
			continue
		}
		val := fmt.Sprint(v)
		if list, ok := v.([]any); ok {
			parts := make([]string, len(list))
			for i, x := range list {
				parts[i] = fmt.Sprint(x)
			}
			val = strings.Join(parts, ",")
		}
		if err := fs.Set(k, val); err != nil {
			return fmt.Errorf("--config %s: %s: %v", path, k, err)
		}
	}
	return nil
}

// maxConfigSize caps a --config file: the sample, every key documented, is
// under 4 KB.
const maxConfigSize = 1 << 20

// readConfigFile reads a regular file of at most maxConfigSize bytes.
// Anything else is refused before a byte is read: /dev/zero would be read
// until memory ran out, and a FIFO would block the open until a writer came,
// both deaf to SIGTERM. O_NONBLOCK keeps the open of a FIFO from blocking
// (open(2)); the type is then checked on the open file, so it cannot change
// between a check and the read.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if pe, ok := err.(*fs.PathError); ok {
		return nil, pe.Err // the caller names the file
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s); give a YAML file", fileKind(fi.Mode()))
	}
	if fi.Size() > maxConfigSize {
		return nil, fmt.Errorf("larger than 1 MiB (%d bytes); a config file is a few kilobytes", fi.Size())
	}
	// The size may have grown since Stat: read one byte past the cap to see.
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("larger than 1 MiB (it grew while being read); a config file is a few kilobytes")
	}
	return b, nil
}

// fileKind names a file type that is not a regular file.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "type " + m.Type().String()
}
