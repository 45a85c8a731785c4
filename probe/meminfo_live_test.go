package probe

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestLiveMeminfo: code blocks see getsockopt(SO_MEMINFO) as packetdrill's
// SK_MEMINFO_* variables, and a wrong expectation names the value.
func TestLiveMeminfo(t *testing.T) {
	src, err := os.ReadFile("testdata/sk-meminfo.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if err := runLive(t, "sk-meminfo.pkt", src); err != nil {
		t.Errorf("%v", err)
	}
	bad := strings.Replace(string(src), "SK_MEMINFO_RCVBUF == 80000", "SK_MEMINFO_RCVBUF == 40000", 1)
	err = runLive(t, "sk-meminfo-bad.pkt", []byte(bad))
	var f *Failure
	want := "runtime error in code: assertion failed: SK_MEMINFO_RCVBUF == 40000 (SK_MEMINFO_RCVBUF = 80000)"
	if !errors.As(err, &f) || f.Line != 16 || f.Msg != want {
		t.Errorf("got %v, want line 16: %s", err, want)
	}
}
