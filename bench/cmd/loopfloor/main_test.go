//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the reader processes, which runWriter
// starts by re-executing os.Executable() with -reader.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-reader" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestEveryEventArrives runs a small floor: 50 connections over three reader
// processes, 200 events/s for half a second. Every event must reach every
// connection and be stamped, whatever the reads cut it into.
func TestEveryEventArrives(t *testing.T) {
	for _, size := range []int{8, 300, 5000} {
		var out strings.Builder
		if err := runWriter(&out, 50, 20, size, 200, 2, 500*time.Millisecond, time.Millisecond); err != nil {
			t.Fatalf("%d B: %v", size, err)
		}
		events := int(0.5*200) + 1
		want := fmt.Sprintf("deliveries %d of %d ", events*50, events*50)
		if !strings.Contains(out.String(), want) {
			t.Errorf("%d B: want %q in\n%s", size, want, out.String())
		}
		if strings.Contains(out.String(), "latency p50 -") {
			t.Errorf("%d B: no latency samples in\n%s", size, out.String())
		}
	}
}
