// Package local implements command:local:Command.
package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"webstack.local/toolchain/command/internal/run"
)

// Logging is command:local:Logging.
type Logging string

func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: "Stdout", Value: run.LogStdout, Description: "Capture stdout in logs but not stderr"},
		{Name: "Stderr", Value: run.LogStderr, Description: "Capture stderr in logs but not stdout"},
		{Name: "StdoutAndStderr", Value: run.LogStdoutAndStderr, Description: "Capture stdout and stderr in logs"},
		{Name: "None", Value: run.LogNone, Description: "Capture no logs"},
	}
}

// Command is command:local:Command.
type Command struct{}

// Args are the inputs of a local Command (property names as in the Python SDK).
type Args struct {
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Dir                    *string           `pulumi:"dir,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Interpreter            []string          `pulumi:"interpreter,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Triggers               []any             `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
	AssetPaths             []string          `pulumi:"assetPaths,optional"`
	ArchivePaths           []string          `pulumi:"archivePaths,optional"`
}

// State is what is checkpointed: the inputs plus the last run's output.
type State struct {
	Args
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "A local command to be executed.\n"+
		"This command can be inserted into the life cycles of other resources using the `dependsOn` or `parent` resource options. "+
		"A command is considered to have failed when it finished with a non-zero exit code. This will fail the CRUD step of the `Command` resource.")
	a.SetToken("local", "Command")
}

func (a *Args) Annotate(an infer.Annotator) {
	an.Describe(&a.Create, "The command to run on create.")
	an.Describe(&a.Update, "The command to run on update, if empty, create will run again.")
	an.Describe(&a.Delete, "The command to run on delete. PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR hold the last output.")
	an.Describe(&a.Dir, "The directory from which to run the command. Defaults to the provider's working directory.")
	an.Describe(&a.Environment, "Additional environment variables available to the command's process.")
	an.Describe(&a.Interpreter, "The program and arguments to run the command. Defaults to [\"/bin/sh\", \"-c\"].")
	an.Describe(&a.Stdin, "Pass a string to the command's process as standard in.")
	an.Describe(&a.Triggers, "Trigger a resource replacement on changes to any of these values.")
	an.Describe(&a.Logging, "If the command's stdout and stderr should be logged. Defaults to stdoutAndStderr.")
	an.Describe(&a.AddPreviousOutputInEnv, "If the previous command's stdout and stderr are injected into the environment of the next run as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR. Defaults to true.")
	an.SetDefault(&a.AddPreviousOutputInEnv, true)
	an.Describe(&a.AssetPaths, "NOT SUPPORTED by this provider build: setting it is an error.")
	an.Describe(&a.ArchivePaths, "NOT SUPPORTED by this provider build: setting it is an error.")
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
	f.OutputField(&state.Create).DependsOn(f.InputField(&args.Create).Secret())
	f.OutputField(&state.Update).DependsOn(f.InputField(&args.Update).Secret())
	f.OutputField(&state.Delete).DependsOn(f.InputField(&args.Delete).Secret())
	f.OutputField(&state.Dir).DependsOn(f.InputField(&args.Dir).Secret())
	f.OutputField(&state.Environment).DependsOn(f.InputField(&args.Environment).Secret())
	f.OutputField(&state.Interpreter).DependsOn(f.InputField(&args.Interpreter).Secret())
	f.OutputField(&state.Stdin).DependsOn(f.InputField(&args.Stdin).Secret())
	f.OutputField(&state.Triggers).DependsOn(f.InputField(&args.Triggers).Secret())
	f.OutputField(&state.Logging).DependsOn(f.InputField(&args.Logging).Secret())
	f.OutputField(&state.AddPreviousOutputInEnv).DependsOn(f.InputField(&args.AddPreviousOutputInEnv).Secret())
	f.OutputField(&state.AssetPaths).DependsOn(f.InputField(&args.AssetPaths).Secret())
	f.OutputField(&state.ArchivePaths).DependsOn(f.InputField(&args.ArchivePaths).Secret())
	for _, out := range []any{&state.Stdout, &state.Stderr} {
		f.OutputField(out).DependsOn(f.InputField(&args.Stdin).Secret())
	}
}

// Check applies defaults and rejects what this provider does not implement.
func (c *Command) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[Args], error) {
	args, failures, err := infer.DefaultCheck[Args](ctx, req.NewInputs)
	if err != nil {
		return infer.CheckResponse[Args]{Inputs: args, Failures: failures}, err
	}
	if len(args.AssetPaths) > 0 {
		failures = append(failures, p.CheckFailure{Property: "assetPaths",
			Reason: "assetPaths is not implemented by this pulumi-resource-command build (webstack toolchain)"})
	}
	if len(args.ArchivePaths) > 0 {
		failures = append(failures, p.CheckFailure{Property: "archivePaths",
			Reason: "archivePaths is not implemented by this pulumi-resource-command build (webstack toolchain)"})
	}
	return infer.CheckResponse[Args]{Inputs: args, Failures: failures}, nil
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

// exec runs one command; on success (and if keep) it stores the output in s.
func (s *State) exec(ctx context.Context, what, command string, keep bool) error {
	argv := []string{"/bin/sh", "-c"}
	if len(s.Interpreter) > 0 {
		argv = append([]string(nil), s.Interpreter...)
	}
	argv = append(argv, command)

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if s.Dir != nil && *s.Dir != "" {
		cmd.Dir = *s.Dir
	}
	cmd.Env = os.Environ()
	for k, v := range s.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if s.AddPreviousOutputInEnv == nil || *s.AddPreviousOutputInEnv {
		if s.Stdout != "" {
			cmd.Env = append(cmd.Env, run.EnvStdout+"="+s.Stdout)
		}
		if s.Stderr != "" {
			cmd.Env = append(cmd.Env, run.EnvStderr+"="+s.Stderr)
		}
	}
	if s.Stdin != nil && *s.Stdin != "" {
		cmd.Stdin = strings.NewReader(*s.Stdin)
	}
	logging := ""
	if s.Logging != nil {
		logging = string(*s.Logging)
	}
	capture := run.NewCapture(ctx, logging)
	cmd.Stdout, cmd.Stderr = capture.Stdout(), capture.Stderr()

	err := cmd.Run()
	stdout, stderr := capture.Finish()
	if err != nil {
		return capture.Failure(fmt.Sprintf("local %s", what), err)
	}
	if keep {
		s.Stdout, s.Stderr = stdout, stderr
	}
	return nil
}
