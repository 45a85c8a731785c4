package procfile

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// Read returns what os.ReadFile returns, for a file longer than its first
// buffer too, and the same kind of error for a missing one.
func TestReadMatchesReadFile(t *testing.T) {
	long := t.TempDir() + "/long"
	if err := os.WriteFile(long, []byte(strings.Repeat("0123456789", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/proc/self/stat", "/proc/sys/net/ipv4/ip_local_port_range", long} {
		got, err := Read(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// /proc/self/stat is the reader's own: its times move.
		if path != "/proc/self/stat" && string(got) != string(want) {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
		if len(got) == 0 {
			t.Errorf("%s: empty", path)
		}
	}
	_, err := Read(t.TempDir() + "/none")
	var pe *os.PathError
	if !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want an *os.PathError for ErrNotExist", err)
	}
}
