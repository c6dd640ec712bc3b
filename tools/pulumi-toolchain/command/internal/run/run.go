// Package run holds what local and remote commands share: capturing stdout/stderr,
// streaming them to the Pulumi log, and turning a failure into a readable error.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
	"golang.org/x/crypto/ssh"
)

// Names of the variables that carry the previous run's output into the next run.
const (
	EnvStdout = "PULUMI_COMMAND_STDOUT"
	EnvStderr = "PULUMI_COMMAND_STDERR"
)

// Logging modes, as in the SDK's Logging enum.
const (
	LogStdout          = "stdout"
	LogStderr          = "stderr"
	LogStdoutAndStderr = "stdoutAndStderr"
	LogNone            = "none"
)

type secretStdinKey struct{}

// WithSecretStdin records in ctx whether the command's stdin is a secret.
func WithSecretStdin(ctx context.Context, secret bool) context.Context {
	return context.WithValue(ctx, secretStdinKey{}, secret)
}

// Capture collects a command's stdout and stderr separately and interleaved, and sends
// each complete line to the engine log when the logging mode asks for that stream.
type Capture struct {
	mu               sync.Mutex
	stdout, stderr   bytes.Buffer
	combined         bytes.Buffer
	logOut, logErr   bool
	secret           bool // stdin is a secret: log no output, quote none in errors
	pendOut, pendErr []byte
	log              p.Logger
}

// NewCapture makes a Capture for one run. logging may be empty (means stdoutAndStderr).
func NewCapture(ctx context.Context, logging string) *Capture {
	if logging == "" {
		logging = LogStdoutAndStderr
	}
	secret, _ := ctx.Value(secretStdinKey{}).(bool)
	c := &Capture{
		log:    p.GetLogger(ctx),
		secret: secret,
		logOut: !secret && (logging == LogStdout || logging == LogStdoutAndStderr),
		logErr: !secret && (logging == LogStderr || logging == LogStdoutAndStderr),
	}
	if secret && logging != LogNone {
		c.log.Info("output not logged: stdin is a secret (stdout and stderr are stored as secrets)")
	}
	return c
}

type stream struct {
	c     *Capture
	isErr bool
}

func (s stream) Write(b []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.combined.Write(b)
	if s.isErr {
		c.stderr.Write(b)
		if c.logErr {
			c.pendErr = c.emit(append(c.pendErr, b...))
		}
	} else {
		c.stdout.Write(b)
		if c.logOut {
			c.pendOut = c.emit(append(c.pendOut, b...))
		}
	}
	return len(b), nil
}

// emit logs every complete line in buf and returns the incomplete rest.
func (c *Capture) emit(buf []byte) []byte {
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return buf
		}
		c.log.Info(string(buf[:i]))
		buf = buf[i+1:]
	}
}

// Stdout and Stderr are the writers to hand to the process or SSH session.
func (c *Capture) Stdout() io.Writer { return stream{c, false} }
func (c *Capture) Stderr() io.Writer { return stream{c, true} }

// Finish flushes unterminated log lines and returns stdout and stderr without their
// final newline (as upstream does).
func (c *Capture) Finish() (stdout, stderr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rest := range [][]byte{c.pendOut, c.pendErr} {
		if len(rest) > 0 {
			c.log.Info(string(rest))
		}
	}
	c.pendOut, c.pendErr = nil, nil
	return strings.TrimSuffix(c.stdout.String(), "\n"), strings.TrimSuffix(c.stderr.String(), "\n")
}

// Failure wraps a run error with the exit code (if any) and the tail of the output.
// The command text itself is left out: it may be a secret.
func (c *Capture) Failure(what string, err error) error {
	c.mu.Lock()
	out := c.combined.String()
	c.mu.Unlock()
	code := ""
	var exitErr *exec.ExitError
	var sshExit *ssh.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = fmt.Sprintf(" with exit code %d", exitErr.ExitCode())
	case errors.As(err, &sshExit):
		code = fmt.Sprintf(" with exit code %d", sshExit.ExitStatus())
	}
	msg := fmt.Sprintf("%s command failed%s: %v", what, code, err)
	if c.secret {
		msg += "\n(output withheld: stdin is a secret)"
	} else if tail := Tail(out, 80, 16384); tail != "" {
		msg += "\n--- output (last lines) ---\n" + tail
	}
	return errors.New(msg)
}

// Tail returns at most maxLines lines and maxBytes bytes from the end of s.
func Tail(s string, maxLines, maxBytes int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}
