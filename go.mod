module github.com/tcpcraft/tcpcraft

go 1.26.8

require (
	github.com/gopacket/gopacket v1.7.7
	github.com/urfave/cli/v3 v3.14.0
	golang.org/x/image v0.47.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
)

require golang.org/x/text v0.43.0 // indirect
