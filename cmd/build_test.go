package cmd

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestStaticBinary builds tcpcraft as CI and users do (CGO_ENABLED=0) and
// checks the result needs no dynamic loader or shared library, then runs
// it once to see main.go hand over to Main and exit with its code.
func TestStaticBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
		if _, statErr := os.Stat(goTool); statErr != nil {
			labtest.Need(t, "the go command: %v", err)
		}
	}
	bin := filepath.Join(t.TempDir(), "tcpcraft")
	// -buildvcs=false: a clone on a machine without git must build too.
	build := exec.Command(goTool, "build", "-buildvcs=false", "-o", bin, ".")
	build.Dir = ".." // the module root, where main.go is
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a PT_INTERP program header: it is dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("binary has a PT_DYNAMIC program header")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary imports shared libraries %q (%v)", libs, err)
	}

	out, err := exec.Command(bin, "bogus").CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != codeUsage {
		t.Errorf("tcpcraft bogus: %v, want exit %d\n%s", err, codeUsage, out)
	}
	if !strings.Contains(string(out), `unknown command "bogus"`) {
		t.Errorf("tcpcraft bogus said %q", out)
	}
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "tcpcraft") {
		t.Errorf("tcpcraft --help: %v\n%s", err, out)
	}
}
