package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tradeops/tradeops/domain"
)

// parseFlags parses a command's arguments the same way for every command:
//   - -h, -help or --help prints the usage and the flags on stdout and ends
//     the command successfully (flag.ErrHelp, which run turns into exit 0);
//   - an unknown flag, a bad value or more than maxArgs positional
//     arguments is a usage error (exit 2), never silently ignored;
//   - every flag value and argument must be valid text (UTF-8 without NUL
//     bytes): they end up in SQL parameters and events, where PostgreSQL
//     would refuse them with a raw driver error.
//
// It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, usage string, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard) // errors are returned, help is printed below
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, usage)
			return nil, flag.ErrHelp
		}
		return nil, usageError("%v\n%s", err, usage)
	}
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if bad == nil && !domain.ValidText(f.Value.String()) {
			bad = usageError("--%s: must be valid UTF-8 text without NUL bytes", f.Name)
		}
	})
	if bad != nil {
		return nil, bad
	}
	for _, a := range fs.Args() {
		if !domain.ValidText(a) {
			return nil, usageError("arguments must be valid UTF-8 text without NUL bytes\n%s", usage)
		}
	}
	if fs.NArg() > maxArgs {
		return nil, usageError("unexpected argument %q\n%s", fs.Arg(maxArgs), usage)
	}
	return fs.Args(), nil
}

// isHelp reports whether a command's first argument asks for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// showUsage prints a command's usage on stdout for an explicit request.
func showUsage(stdout io.Writer, usage string) error {
	fmt.Fprintln(stdout, usage)
	return flag.ErrHelp
}

func printUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprintln(w, usage)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}
