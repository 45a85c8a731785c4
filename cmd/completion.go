package cmd

import (
	"slices"

	"github.com/urfave/cli/v3"
)

// completionShells are the shells tcpcraft completion writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

// configureCompletion shapes urfave/cli's completion command into
// "tcpcraft completion bash|zsh|fish": visible, documented, and without
// the shells we do not test. The scripts ask tcpcraft itself for the words
// (--generate-shell-completion), so they follow the commands and flags of
// the binary that answers.
func configureCompletion(c *cli.Command) {
	c.Hidden = false
	c.Usage = "print a shell completion script for bash, zsh or fish"
	c.ArgsUsage = "bash|zsh|fish"
	c.Description = "The script completes tcpcraft's commands and, after a '-', their options; file names\n" +
		"elsewhere. Load it in the running shell, or install it where the shell looks."
	c.Commands = slices.DeleteFunc(c.Commands, func(sub *cli.Command) bool {
		return !slices.Contains(completionShells, sub.Name)
	})
	for _, sub := range c.Commands {
		sub.Usage = "print the completion script for " + sub.Name
	}
	withExamples(c,
		example{"bash, this shell", "source <(tcpcraft completion bash)"},
		example{"bash, every shell", "tcpcraft completion bash | sudo tee /etc/bash_completion.d/tcpcraft >/dev/null"},
		example{"zsh (in .zshrc, after compinit)", "source <(tcpcraft completion zsh)"},
		example{"fish", "tcpcraft completion fish > ~/.config/fish/completions/tcpcraft.fish"},
	)
}
