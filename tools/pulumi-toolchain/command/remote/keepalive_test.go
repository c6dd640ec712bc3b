package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// blackhole is a connection that, once cut, delivers nothing more in either direction and reports no
// error: what a dropped network link or a stopped host looks like to the client.
type blackhole struct {
	net.Conn
	mu          sync.Mutex
	cut, closed bool
}

func (b *blackhole) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Conn.Close()
}

func (b *blackhole) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		cut, closed := b.cut, b.closed
		b.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		if !cut {
			_ = b.Conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, err := b.Conn.Read(p)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return n, err
		}
		time.Sleep(10 * time.Millisecond) // nothing ever arrives again
	}
}

func (b *blackhole) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return len(p), nil // swallowed
	}
	return b.Conn.Write(p)
}

// serve runs an SSH server on one end of a pipe that answers global requests (keepalives) with a reply.
func serve(t *testing.T, conn net.Conn) {
	_, hostKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	config := &ssh.ServerConfig{NoClientAuth: true}
	config.AddHostKey(signer)
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return
	}
	go func() {
		for req := range reqs {
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		}
	}()
	for ch := range chans {
		_ = ch.Reject(ssh.Prohibited, "no sessions in this test")
	}
}

func connect(t *testing.T) (*ssh.Client, *blackhole) {
	// Loopback TCP, not net.Pipe: both ends write their version line first, which an unbuffered pipe deadlocks.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		if server, err := listener.Accept(); err == nil {
			serve(t, server)
		}
	}()
	client, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	hole := &blackhole{Conn: client}
	conn, chans, reqs, err := ssh.NewClientConn(hole, "test", &ssh.ClientConfig{
		User: "deploy", HostKeyCallback: ssh.InsecureIgnoreHostKey()}) //nolint:gosec // a test server
	if err != nil {
		t.Fatal(err)
	}
	return ssh.NewClient(conn, chans, reqs), hole
}

func TestKeepAliveClosesAConnectionThatStoppedAnswering(t *testing.T) {
	client, hole := connect(t)
	lost := make(chan struct{})
	go keepAlive(client, 50*time.Millisecond, 3, lost)
	time.Sleep(300 * time.Millisecond) // answered keepalives: nothing happens
	select {
	case <-lost:
		t.Fatal("a connection that answers was declared lost")
	default:
	}
	hole.mu.Lock()
	hole.cut = true
	hole.mu.Unlock()
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("a connection that stopped answering was not declared lost")
	}
	if err := client.Wait(); err == nil {
		t.Fatal("the client is still open after the connection was declared lost")
	}
}

func TestKeepAliveEndsQuietlyWhenTheClientIsClosed(t *testing.T) {
	client, _ := connect(t)
	lost := make(chan struct{})
	done := make(chan struct{})
	go func() { keepAlive(client, 20*time.Millisecond, 3, lost); close(done) }()
	client.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("keepAlive kept running after the client was closed")
	}
	select {
	case <-lost:
		t.Fatal("a closed client was reported as a lost connection")
	default:
	}
}
