// Package remote implements command:remote:Command (commands run over SSH).
package remote

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"webstack.local/toolchain/command/internal/run"
)

// Logging is command:remote:Logging.
type Logging string

func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: "Stdout", Value: run.LogStdout, Description: "Capture stdout in logs but not stderr"},
		{Name: "Stderr", Value: run.LogStderr, Description: "Capture stderr in logs but not stdout"},
		{Name: "StdoutAndStderr", Value: run.LogStdoutAndStderr, Description: "Capture stdout and stderr in logs"},
		{Name: "None", Value: run.LogNone, Description: "Capture no logs"},
	}
}

// Command is command:remote:Command.
type Command struct{}

// Args are the inputs of a remote Command (property names as in the Python SDK).
type Args struct {
	Connection             *Connection       `pulumi:"connection" provider:"secret"`
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Triggers               []any             `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// State is what is checkpointed: the inputs plus the last run's output.
type State struct {
	Args
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "A command to run on a remote host. The connection is established via ssh.")
	a.SetToken("remote", "Command")
}

func (a *Args) Annotate(an infer.Annotator) {
	an.Describe(&a.Connection, "The parameters with which to connect to the remote host.")
	an.Describe(&a.Create, "The command to run on create.")
	an.Describe(&a.Update, "The command to run on update, if empty, create will run again.")
	an.Describe(&a.Delete, "The command to run on delete. PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR hold the last output.")
	an.Describe(&a.Environment, "Additional environment variables available to the command's process. "+
		"Sent with SSH setenv requests; variables the server refuses (sshd AcceptEnv) are exported by a shell prefix instead.")
	an.Describe(&a.Stdin, "Pass a string to the command's process as standard in.")
	an.Describe(&a.Triggers, "Trigger a resource replacement on changes to any of these values.")
	an.Describe(&a.Logging, "If the command's stdout and stderr should be logged. Defaults to stdoutAndStderr.")
	an.Describe(&a.AddPreviousOutputInEnv, "If the previous command's stdout and stderr are injected into the environment of the next run as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR. Defaults to true.")
	an.SetDefault(&a.AddPreviousOutputInEnv, true)
}

func (s *State) Annotate(a infer.Annotator) {
	a.Describe(&s.Stdout, "The standard output of the command's process")
	a.Describe(&s.Stderr, "The standard error of the command's process")
}

// WireDependencies keeps infer's default secret flow (an input echoed in the state keeps
// its secretness) and adds one rule of ours: when stdin is a secret, stdout and stderr
// are secret too (a command reading stdin may print it). Computedness keeps the default
// (every output depends on every input).
func (c *Command) WireDependencies(f infer.FieldSelector, args *Args, state *State) {
	f.OutputField(&state.Connection).DependsOn(f.InputField(&args.Connection).Secret())
	f.OutputField(&state.Create).DependsOn(f.InputField(&args.Create).Secret())
	f.OutputField(&state.Update).DependsOn(f.InputField(&args.Update).Secret())
	f.OutputField(&state.Delete).DependsOn(f.InputField(&args.Delete).Secret())
	f.OutputField(&state.Environment).DependsOn(f.InputField(&args.Environment).Secret())
	f.OutputField(&state.Stdin).DependsOn(f.InputField(&args.Stdin).Secret())
	f.OutputField(&state.Triggers).DependsOn(f.InputField(&args.Triggers).Secret())
	f.OutputField(&state.Logging).DependsOn(f.InputField(&args.Logging).Secret())
	f.OutputField(&state.AddPreviousOutputInEnv).DependsOn(f.InputField(&args.AddPreviousOutputInEnv).Secret())
	for _, out := range []any{&state.Stdout, &state.Stderr} {
		f.OutputField(out).DependsOn(f.InputField(&args.Stdin).Secret())
	}
}

// Check applies defaults and rejects what this provider does not implement.
func (c *Command) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[Args], error) {
	args, failures, err := infer.DefaultCheck[Args](ctx, req.NewInputs)
	if err == nil && args.Connection != nil && args.Connection.Proxy != nil {
		failures = append(failures, p.CheckFailure{Property: "connection.proxy",
			Reason: "connection.proxy is not implemented by this pulumi-resource-command build (webstack toolchain)"})
	}
	return infer.CheckResponse[Args]{Inputs: args, Failures: failures}, err
}

func (c *Command) Create(ctx context.Context, req infer.CreateRequest[Args]) (infer.CreateResponse[State], error) {
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil {
		return infer.CreateResponse[State]{}, err
	}
	state := State{Args: req.Inputs}
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[State]{ID: id, Output: state}, nil
	}
	err = state.exec(ctx, "create", *req.Inputs.Create, true)
	return infer.CreateResponse[State]{ID: id, Output: state}, err
}

// Update runs `update`, or `create` again when no update command is given (as upstream).
func (c *Command) Update(ctx context.Context, req infer.UpdateRequest[Args, State]) (infer.UpdateResponse[State], error) {
	state := State{Args: req.Inputs, Stdout: req.State.Stdout, Stderr: req.State.Stderr}
	if req.DryRun {
		return infer.UpdateResponse[State]{Output: state}, nil
	}
	what, cmd := "update", req.Inputs.Update
	if cmd == nil {
		what, cmd = "create", req.Inputs.Create
	}
	if cmd == nil {
		return infer.UpdateResponse[State]{Output: state}, nil
	}
	err := state.exec(ctx, what, *cmd, true)
	return infer.UpdateResponse[State]{Output: state}, err
}

func (c *Command) Delete(ctx context.Context, req infer.DeleteRequest[State]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	state := req.State
	return infer.DeleteResponse{}, state.exec(ctx, "delete", *state.Delete, false)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// exec runs one command in a new SSH session; on success (and if keep) it stores the output.
func (s *State) exec(ctx context.Context, what, command string, keep bool) error {
	if s.Connection == nil {
		return fmt.Errorf("connection is required")
	}
	client, err := s.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	lost := make(chan struct{})
	go keepAlive(client, keepAliveInterval, keepAliveMisses, lost)
	session, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	defer session.Close()

	env := map[string]string{}
	for k, v := range s.Environment {
		env[k] = v
	}
	if s.AddPreviousOutputInEnv == nil || *s.AddPreviousOutputInEnv {
		if s.Stdout != "" {
			env[run.EnvStdout] = s.Stdout
		}
		if s.Stderr != "" {
			env[run.EnvStderr] = s.Stderr
		}
	}
	// Try SSH "env" requests first; sshd usually refuses them (AcceptEnv), so fall back
	// to `export NAME='value';` in front of the command for the refused ones.
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var prefix strings.Builder
	for _, k := range keys {
		if session.Setenv(k, env[k]) == nil {
			continue
		}
		if !envName.MatchString(k) {
			return fmt.Errorf("environment variable name %q is not a valid shell name and the server refused it via setenv", k)
		}
		prefix.WriteString("export " + k + "=" + shellQuote(env[k]) + "; ")
	}

	if s.Stdin != nil && *s.Stdin != "" {
		session.Stdin = strings.NewReader(*s.Stdin)
	}
	logging := ""
	if s.Logging != nil {
		logging = string(*s.Logging)
	}
	capture := run.NewCapture(ctx, logging)
	session.Stdout, session.Stderr = capture.Stdout(), capture.Stderr()

	done := make(chan error, 1)
	go func() { done <- session.Run(prefix.String() + command) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = session.Signal("TERM")
		client.Close()
		err = ctx.Err()
	}
	stdout, stderr := capture.Finish()
	select {
	case <-lost:
		err = fmt.Errorf("the SSH connection to %s was lost: no answer to %d keepalives in %s (the command's "+
			"outcome on the host is unknown; run `pulumi up` again)", s.Connection.Host, keepAliveMisses,
			keepAliveInterval*keepAliveMisses)
	default:
	}
	if err != nil {
		return capture.Failure(fmt.Sprintf("remote %s", what), err)
	}
	if keep {
		s.Stdout, s.Stderr = stdout, stderr
	}
	return nil
}

func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
