package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

func wsEvent(seq uint64, ms int64) []byte {
	p := fmt.Sprintf(`{"jsonrpc":"2.0","method":"event","params":{"contextId":"c1","seq":%d,"txId":"ab","txSeq":%d,"kind":"StateMutation","rootHash":"00","time":%d}}`, seq, seq, ms)
	return wsFrame(0x1, []byte(p))
}

func wsFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

func sseEvent(seq uint64, ms int64) []byte {
	return fmt.Appendf(nil, "id: c1:%d\nevent: message\ndata: {\"contextId\":\"c1\",\"seq\":%d,\"txSeq\":%d,\"kind\":\"Note\",\"data\":{\"seq\":1,\"time\":2},\"time\":%d}\n\n", seq, seq, seq, ms)
}

// readAll feeds stream to a fanoutReader over a real socket in pieces of step bytes,
// closes it, and returns the reader's counts and what it wrote back.
func readAll(t *testing.T, stream []byte, step int, sse bool) (report, []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r, err := newFanoutReader([]net.Conn{c}, nil, sse)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(start.Add(time.Minute)) // returns when the socket closes
	}()
	for len(stream) > 0 {
		n := min(step, len(stream))
		if _, err := srv.Write(stream[:n]); err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
	}
	_ = srv.(*net.TCPConn).CloseWrite()
	<-done
	back, _ := io.ReadAll(srv)
	return r.report(start), back
}

func TestFanoutReaderWS(t *testing.T) {
	now := time.Now().UnixMilli()
	var stream []byte
	for seq := uint64(41); seq <= 60; seq++ {
		stream = append(stream, wsEvent(seq, now)...)
		if seq == 50 {
			stream = append(stream, wsFrame(0x9, []byte("hi"))...)
		}
	}
	for _, step := range []int{1, 7, 300, len(stream)} {
		t.Run(fmt.Sprint(step), func(t *testing.T) {
			rep, back := readAll(t, stream, step, false)
			if rep.OK != 20 || rep.Errors != 0 {
				t.Errorf("read %d events with %d errors, want 20 and 0", rep.OK, rep.Errors)
			}
			if len(rep.Latency) != 2 { // deliveries 1 and 17
				t.Errorf("%d latency samples, want 2", len(rep.Latency))
			}
			if want := []byte{0x8A, 0x82, 0, 0, 0, 0, 'h', 'i'}; string(back) != string(want) {
				t.Errorf("answered % x, want the pong % x", back, want)
			}
		})
	}
}

func TestFanoutReaderFindsDisorder(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		errs int
	}{
		{"in order", []uint64{1, 2, 3}, 0},
		{"gap", []uint64{1, 2, 4, 5}, 1},
		{"duplicate", []uint64{1, 2, 2, 3}, 1},
		{"reordered", []uint64{1, 3, 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ws, sse []byte
			for _, s := range tc.seqs {
				ws = append(ws, wsEvent(s, 1)...)
				sse = append(sse, sseEvent(s, 1)...)
			}
			for _, c := range []struct {
				sse    bool
				stream []byte
			}{{false, ws}, {true, sse}} {
				rep, _ := readAll(t, c.stream, 50, c.sse)
				if rep.OK != len(tc.seqs) || rep.Errors != tc.errs {
					t.Errorf("sse=%v: %d events, %d errors; want %d, %d", c.sse, rep.OK, rep.Errors, len(tc.seqs), tc.errs)
				}
			}
		})
	}
}

func TestFanoutReaderRefusesOtherFrames(t *testing.T) {
	reply := wsFrame(0x1, []byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	masked := []byte{0x81, 0x82, 1, 2, 3, 4, 'a', 'b'}
	for name, stream := range map[string][]byte{
		"reply":  append(wsEvent(1, 1), reply...),
		"masked": append(wsEvent(1, 1), masked...),
	} {
		rep, _ := readAll(t, stream, 1000, false)
		if rep.OK != 1 || rep.Errors != 1 {
			t.Errorf("%s: %d events, %d errors; want 1, 1", name, rep.OK, rep.Errors)
		}
	}
}

func TestEventSeqTime(t *testing.T) {
	for _, tc := range []struct {
		in       string
		seq, ms  uint64
		ok       bool
		describe string
	}{
		{`"contextId":"c","seq":42,"txSeq":7,"time":1763800000000}}`, 42, 1763800000000, true, "ws params"},
		{`"seq":1,"data":{"time":5,"seq":9},"time":77}`, 1, 77, true, "app data holds seq and time"},
		{`"seq":1,"time":}`, 0, 0, false, "no time"},
		{`"txSeq":3,"time":5}`, 0, 0, false, "no seq"},
		{`"seq":1,"stamp":5}`, 0, 0, false, "time is not last"},
	} {
		seq, ms, ok := eventSeqTime([]byte(tc.in))
		if seq != tc.seq || ms != tc.ms || ok != tc.ok {
			t.Errorf("%s: got %d, %d, %v; want %d, %d, %v", tc.describe, seq, ms, ok, tc.seq, tc.ms, tc.ok)
		}
	}
}

// FuzzNextWSFrame checks that any bytes give a frame within them, a request for
// more, or an error, and never a panic.
func FuzzNextWSFrame(f *testing.F) {
	f.Add(wsEvent(1, 1))
	f.Add(wsFrame(0x9, nil))
	f.Add(wsFrame(0x1, make([]byte, 70000)))
	f.Add([]byte{0x81, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, payload, n, err := nextWSFrame(b)
		switch {
		case err != nil, n == 0:
			if payload != nil || n != 0 {
				t.Fatalf("no frame, yet payload %d bytes, n %d", len(payload), n)
			}
		case n > len(b) || len(payload) > n || op == 0:
			t.Fatalf("frame of %d bytes (payload %d, op %d) from %d bytes", n, len(payload), op, len(b))
		}
		if n > 0 {
			_, _, _ = eventSeqTime(payload)
		}
	})
}
