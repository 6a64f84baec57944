package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestOutboxJoinsAdjacentFrames checks that event frames made one after the other in
// an arena are queued as one piece, and that anything else starts a new piece.
func TestOutboxJoinsAdjacentFrames(t *testing.T) {
	h, err := NewHub(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(t.Context())
	var a arena
	frame := func(i int) []byte {
		p := fmt.Sprintf("event %d", i)
		return a.fill(len(p), func(b []byte) []byte { return append(b, p...) })
	}
	o := &outbox{}
	o.init(h, 1, nil, func(d Disconnect) { t.Errorf("outbox failed: %s", d.Reason) })
	o.dirty = true // no sweep comes to this outbox, which has no connection
	var want []byte
	for i := range 5 {
		f := frame(i)
		o.push(f, nil, false)
		want = append(want, f...)
	}
	if got := pieces(o); len(got) != 1 {
		t.Fatalf("5 adjacent frames queued as %d pieces, want 1", len(got))
	}
	header, payload := []byte("re"), []byte("ply") // two allocations of their own
	o.push(header, payload, false)
	o.push([]byte{}, nil, false) // nothing: no piece (but counted as a frame)
	want = append(want, "reply"...)
	f := frame(5)
	o.push(f, nil, false)
	want = append(want, f...)
	if got := pieces(o); len(got) != 4 {
		t.Errorf("%d pieces, want 4: the run of events, the reply's header and payload, the next event", len(got))
	}
	if got := bytes.Join(pieces(o), nil); !bytes.Equal(got, want) {
		t.Errorf("queue holds %q, want %q", got, want)
	}
	if o.bytes != len(want) || o.count != 8 {
		t.Errorf("queue counts %d bytes and %d frames, want %d and 8", o.bytes, o.count, len(want))
	}
}

func pieces(o *outbox) [][]byte {
	p := append([][]byte(nil), o.queue...)
	if o.tail != nil {
		p = append(p, o.tail)
	}
	return p
}

// TestArenaFramesStayApart checks that frames of an arena never share bytes, also
// across chunks and for frames too large for a chunk.
func TestArenaFramesStayApart(t *testing.T) {
	var a arena
	var frames [][]byte
	for i := range 3000 {
		n := 1 + i%200
		if i%1000 == 999 {
			n = arenaMaxFrame + 1
		}
		c := byte(i)
		frames = append(frames, a.fill(n, func(b []byte) []byte { return append(b, bytes.Repeat([]byte{c}, n)...) }))
	}
	for i, f := range frames {
		if !bytes.Equal(f, bytes.Repeat([]byte{byte(i)}, len(f))) {
			t.Fatalf("frame %d was overwritten", i)
		}
	}
	// An encoder that writes more than it announced still gets its whole frame.
	long := a.fill(3, func(b []byte) []byte { return append(b, "four"...) })
	if string(long) != "four" {
		t.Errorf("overlong frame = %q", long)
	}
}

// TestWritevNonBlockingRest checks that a sweep's write that the socket cannot take
// whole returns exactly the bytes it did not write, cut inside a piece.
func TestWritevNonBlockingRest(t *testing.T) {
	c, sc := tcpPair(t)
	rc, _ := sc.(*net.TCPConn).SyscallConn()
	pieces, want := bigBatch(3000) // more than IOV_MAX pieces
	_, rest, err := writevNonBlocking(rc, pieces, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 {
		t.Fatal("the whole batch was written at once; the test needs a full socket")
	}
	written := len(want) - len(bytes.Join(rest, nil))
	if !bytes.Equal(bytes.Join(rest, nil), want[written:]) {
		t.Fatal("rest is not the unwritten tail of the batch")
	}
	go func() { _, _ = sc.Write(bytes.Join(rest, nil)); sc.Close() }()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes, want the %d bytes of the batch in order", len(got), len(want))
	}
}

// TestWriteBlockingFinishesWhatTheSocketDidNotTake: a blocking write on TCP goes out
// first as a raw non-blocking writev; what a full socket did not take follows within
// the write timeout as the reader drains it, whole and in order.
func TestWriteBlockingFinishesWhatTheSocketDidNotTake(t *testing.T) {
	h, err := NewHub(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	c, sc := tcpPair(t)
	o := &outbox{}
	o.init(h, 1, sc, func(Disconnect) {})
	if o.raw == nil {
		t.Fatal("no raw connection on TCP")
	}
	pieces, want := bigBatch(2000)
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the socket fill first
		b, _ := io.ReadAll(c)
		got <- b
	}()
	if err := o.writeBlocking(pieces); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, want the %d bytes written, in order", len(b), len(want))
	}
}

// tcpPair returns a connected loopback client and server, the server's send buffer
// small, so that a large write fills the socket.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	_ = server.(*net.TCPConn).SetWriteBuffer(4096)
	return client, server
}

// bigBatch returns n pieces of 1 to 1,000 bytes, far more than a socket holds, and
// their bytes in order.
func bigBatch(n int) (pieces [][]byte, all []byte) {
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, 1+i%1000)
		pieces = append(pieces, p)
		all = append(all, p...)
	}
	return pieces, all
}

// pipeOutbox returns an outbox on one end of an in-memory connection, and the other
// end, as the client.
func pipeOutbox(t *testing.T) (*outbox, net.Conn) {
	h, err := NewHub(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	c, sc := net.Pipe()
	t.Cleanup(func() { c.Close() })
	o := &outbox{}
	o.init(h, 1, sc, func(Disconnect) {})
	return o, c
}

// TestWriteSoonWaitsForAWriteInProgress checks that a close frame written while
// another write holds the connection goes out once that write lets go (a client that
// has just read a reply while its writer has not yet let go still gets the frame),
// and that it gives up after its wait when the write does not let go.
func TestWriteSoonWaitsForAWriteInProgress(t *testing.T) {
	o, c := pipeOutbox(t)

	o.wmu.Lock()
	go func() {
		time.Sleep(20 * time.Millisecond)
		o.wmu.Unlock()
	}()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 5)
		_, _ = io.ReadFull(c, b)
		got <- b
	}()
	if err := o.writeSoon([]byte("close"), time.Second, time.Second); err != nil {
		t.Fatalf("writeSoon after the write let go: %v", err)
	}
	if b := <-got; string(b) != "close" {
		t.Fatalf("peer read %q, want the frame", b)
	}

	o.wmu.Lock() // a writer stuck on its peer
	defer o.wmu.Unlock()
	if err := o.writeSoon([]byte("close"), time.Second, 10*time.Millisecond); !errors.Is(err, errWriterBusy) {
		t.Fatalf("writeSoon while the write lock stays held = %v, want errWriterBusy", err)
	}
}

// TestCloseWithDoesNotWait checks that closing while a write holds the connection
// returns at once, and that the close frame still goes out, before the connection
// closes, once that write lets go.
func TestCloseWithDoesNotWait(t *testing.T) {
	o, c := pipeOutbox(t)
	o.wmu.Lock()
	returned := make(chan struct{})
	go func() {
		o.closeWith([]byte("close"), time.Second)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(500 * time.Millisecond):
		t.Fatal("closeWith waited for the write in progress")
	}
	o.wmu.Unlock()
	got, err := io.ReadAll(c) // until the connection closes
	if string(got) != "close" {
		t.Fatalf("peer read %q (%v), want the close frame and then the end", got, err)
	}
}

// TestCloseWithoutWaitDropsTheFrame checks the slow case: with no wait and a write
// holding the connection, the connection closes at once and no frame is written.
func TestCloseWithoutWaitDropsTheFrame(t *testing.T) {
	o, c := pipeOutbox(t)
	o.wmu.Lock() // a writer stuck on a peer that does not read
	defer o.wmu.Unlock()
	o.closeWith([]byte("close"), 0)
	got, err := io.ReadAll(c)
	if len(got) != 0 || err != nil {
		t.Fatalf("peer read %q (%v), want the end of the connection and nothing else", got, err)
	}
}
