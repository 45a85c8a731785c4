// Command tcpcraft speaks TCP from userspace against real Linux kernel
// peers. Everything happens in package cmd; main only exits with its code.
package main

import (
	"os"

	"github.com/tcpcraft/tcpcraft/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args))
}
