package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Connection is command:remote:Connection.
type Connection struct {
	Host               string           `pulumi:"host"`
	Port               *float64         `pulumi:"port,optional"`
	User               *string          `pulumi:"user,optional"`
	Password           *string          `pulumi:"password,optional"`
	PrivateKey         *string          `pulumi:"privateKey,optional"`
	PrivateKeyPassword *string          `pulumi:"privateKeyPassword,optional"`
	AgentSocketPath    *string          `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int             `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int             `pulumi:"perDialTimeout,optional"`
	HostKey            *string          `pulumi:"hostKey,optional"`
	Proxy              *ProxyConnection `pulumi:"proxy,optional"`
}

// ProxyConnection is command:remote:ProxyConnection. It is part of the schema so the
// SDK's shape is accepted, but connecting through a proxy is not implemented.
type ProxyConnection struct {
	Host               string   `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

func (c *Connection) Annotate(a infer.Annotator) {
	a.Describe(&c, "Instructions for how to connect to a remote endpoint.")
	a.Describe(&c.Host, "The address of the resource to connect to.")
	a.Describe(&c.Port, "The port to connect to. Defaults to 22.")
	a.SetDefault(&c.Port, 22.0)
	a.Describe(&c.User, "The user that we should use for the connection.")
	a.SetDefault(&c.User, "root")
	a.Describe(&c.Password, "The password we should use for the connection.")
	a.Describe(&c.PrivateKey, "The contents of an SSH key to use for the connection. This takes preference over the password if provided.")
	a.Describe(&c.PrivateKeyPassword, "The password to use in case the private key is encrypted.")
	a.Describe(&c.AgentSocketPath, "SSH Agent socket path. Default to environment variable SSH_AUTH_SOCK if present.")
	a.Describe(&c.DialErrorLimit, "Max allowed errors on trying to dial the remote host. -1 set count to unlimited. Default value is 10.")
	a.SetDefault(&c.DialErrorLimit, 10)
	a.Describe(&c.PerDialTimeout, "Max number of seconds for each dial attempt. 0 implies no maximum. Default value is 15 seconds.")
	a.SetDefault(&c.PerDialTimeout, 15)
	a.Describe(&c.HostKey, "The expected host key (authorized_keys line, e.g. \"ssh-ed25519 AAAA...\"). If not provided, the host key is not checked (a warning is logged).")
	a.Describe(&c.Proxy, "The connection settings for the bastion/proxy host. NOT SUPPORTED by this provider build: setting it is an error.")
}

func (c *ProxyConnection) Annotate(a infer.Annotator) {
	a.Describe(&c, "Instructions for how to connect to a remote endpoint via a bastion host. Not supported by this provider build.")
}

// dial connects, retrying transient errors up to dialErrorLimit times.
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	if c.Proxy != nil {
		return nil, errors.New("connection.proxy is not implemented by this pulumi-resource-command build (webstack toolchain)")
	}
	config, err := c.clientConfig(ctx)
	if err != nil {
		return nil, err
	}
	port := 22
	if c.Port != nil && *c.Port != 0 {
		port = int(*c.Port)
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
	limit := 10
	if c.DialErrorLimit != nil {
		limit = *c.DialErrorLimit
	}
	if c.PerDialTimeout != nil {
		config.Timeout = time.Duration(*c.PerDialTimeout) * time.Second
	} else {
		config.Timeout = 15 * time.Second
	}

	for attempt := 1; ; attempt++ {
		client, err := ssh.Dial("tcp", addr, config)
		if err == nil {
			return client, nil
		}
		var mismatch *hostKeyMismatch
		if config.HostKeyAlgorithms != nil && strings.Contains(err.Error(), "no common algorithm for host key") {
			return nil, fmt.Errorf("ssh %s@%s: host key verification failed: the server offers no %s host key, "+
				"which is the type of connection.hostKey: %w", config.User, addr, config.HostKeyAlgorithms[0], err)
		}
		if errors.As(err, &mismatch) || strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh %s@%s: %w", config.User, addr, err) // permanent: do not retry
		}
		if limit >= 0 && attempt >= limit {
			return nil, fmt.Errorf("ssh %s@%s: giving up after %d dial attempts: %w", config.User, addr, attempt, err)
		}
		p.GetLogger(ctx).InfoStatusf("dial %s failed (attempt %d): %v; retrying", addr, attempt, err)
		wait := time.Duration(attempt) * time.Second
		if wait > 5*time.Second {
			wait = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// A dropped connection (a laptop's network gone, a firewall's idle timeout, a host that stopped) shows no
// error on an idle session: without keepalives a command that waits on it hangs `pulumi up` for ever.
// OpenSSH's ServerAliveInterval/ServerAliveCountMax, with the same meaning.
const (
	keepAliveInterval = 15 * time.Second
	keepAliveMisses   = 3
)

// keepAlive asks the server for a reply every interval; after `misses` intervals without one it closes
// `lost` and the client, which ends the running session with an error.
func keepAlive(client *ssh.Client, interval time.Duration, misses int, lost chan<- struct{}) {
	missed := 0
	for {
		time.Sleep(interval)
		replied := make(chan error, 1)
		go func() {
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case err := <-replied:
			if err != nil { // the client was closed (the command ended) or the connection broke
				return
			}
			missed = 0
		case <-time.After(interval):
			missed++
			if missed >= misses {
				close(lost)
				client.Close()
				return
			}
		}
	}
}

func (c *Connection) clientConfig(ctx context.Context) (*ssh.ClientConfig, error) {
	user := "root"
	if c.User != nil && *c.User != "" {
		user = *c.User
	}
	config := &ssh.ClientConfig{User: user}

	if c.PrivateKey != nil && *c.PrivateKey != "" {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil && *c.PrivateKeyPassword != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, fmt.Errorf("connection.privateKey: %w", err) // never echo the key
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil && *c.Password != "" {
		pw := *c.Password
		config.Auth = append(config.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if c.AgentSocketPath != nil && *c.AgentSocketPath != "" {
		sock = *c.AgentSocketPath
	}
	if sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			config.Auth = append(config.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		} else if c.AgentSocketPath != nil {
			return nil, fmt.Errorf("connection.agentSocketPath %q: %w", sock, err)
		}
	}
	if len(config.Auth) == 0 {
		return nil, errors.New("connection: no authentication method (set privateKey, password or agentSocketPath/SSH_AUTH_SOCK)")
	}

	if c.HostKey == nil || strings.TrimSpace(*c.HostKey) == "" {
		p.GetLogger(ctx).Warningf("connection.hostKey is not set: the SSH host key of %s is NOT verified", c.Host)
		config.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // upstream behaviour without hostKey
		return config, nil
	}
	want, err := parseHostKey(*c.HostKey)
	if err != nil {
		return nil, err
	}
	config.HostKeyAlgorithms = algorithmsFor(want.Type())
	fixed := ssh.FixedHostKey(want)
	config.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if fixed(hostname, remote, key) != nil {
			return &hostKeyMismatch{host: hostname, got: key, want: want}
		}
		return nil
	}
	return config, nil
}

// parseHostKey accepts an authorized_keys line ("ssh-ed25519 AAAA... comment") or a
// known_hosts line ("host ssh-ed25519 AAAA...").
func parseHostKey(s string) (ssh.PublicKey, error) {
	if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return key, nil
	}
	if _, _, key, _, _, err := ssh.ParseKnownHosts([]byte(s)); err == nil {
		return key, nil
	}
	return nil, errors.New("connection.hostKey: not a valid public key line (expected e.g. \"ssh-ed25519 AAAA...\")")
}

// algorithmsFor makes the server present the key type that was pinned.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

type hostKeyMismatch struct {
	host      string
	got, want ssh.PublicKey
}

func (e *hostKeyMismatch) Error() string {
	return fmt.Sprintf("host key verification failed for %s: server presented %s %s, but connection.hostKey expects %s %s",
		e.host, e.got.Type(), ssh.FingerprintSHA256(e.got), e.want.Type(), ssh.FingerprintSHA256(e.want))
}
