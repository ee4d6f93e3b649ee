package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flags is one command's flag set: flags may come before, between or after the
// positional arguments (`start SRC DST --wait`), which the flag package alone refuses.
type flags struct {
	name   string
	fs     *flag.FlagSet
	args   []string
	nargs  int    // positional arguments required; -1: any number
	argsOf string // their names, for messages
	url    string
	appDir string
	json   bool
	// action runs a command of the HTTP API; storage, one of the operator commands that
	// work on the app's storage directly. A command sets one of them.
	action  func(context.Context, *client, *output) error
	storage func(context.Context, *operator, *output) error
	// check, when set, validates the parsed command line before anything is opened.
	check func() error
}

func newFlags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{name: name, fs: fs}
}

func (f *flags) parse(args []string) error {
	for {
		if err := f.fs.Parse(args); err != nil {
			return usageError{fmt.Sprintf("%s: %v", f.name, err)}
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			break
		}
		f.args = append(f.args, rest[0])
		args = rest[1:]
	}
	if f.nargs >= 0 && len(f.args) != f.nargs {
		return usageError{fmt.Sprintf("%s needs %s, got %d argument(s)", f.name, f.argsOf, len(f.args))}
	}
	if f.check != nil {
		return f.check()
	}
	return nil
}

// pairs is a repeatable k=v flag.
type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }

func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	p[k] = val
	return nil
}

// destination parses [ACCOUNT:]CONTAINER/BLOB. Container names and account aliases hold
// no ':' or '/', so the split is unambiguous; the blob name may hold '/'.
func destination(s string) (map[string]string, error) {
	account, rest, hasAccount := "", s, false
	if i := strings.IndexAny(s, ":/"); i >= 0 && s[i] == ':' {
		account, rest, hasAccount = s[:i], s[i+1:], true
	}
	container, blob, ok := strings.Cut(rest, "/")
	if !ok || container == "" || blob == "" || (hasAccount && account == "") {
		return nil, fmt.Errorf("destination %q is not [ACCOUNT:]CONTAINER/BLOB, e.g. backup/hello.txt or slowdemo:backup/big.bin", s)
	}
	d := map[string]string{"container": container, "blob": blob}
	if account != "" {
		d["account"] = account
	}
	return d, nil
}
