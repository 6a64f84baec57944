package execution

import (
	"reflect"
	"testing"
)

func TestRounds(t *testing.T) {
	jobs := []*Job{
		{Tenant: "t", ContextID: "a"}, {Tenant: "t", ContextID: "b"}, {Tenant: "t", ContextID: "a"},
		{Tenant: "u", ContextID: "a"}, {Tenant: "t", ContextID: "a"}, {Tenant: "t", ContextID: "b"},
	}
	got := rounds(jobs)
	// Each round has one job per context; a context's jobs keep their order.
	want := [][]int{{0, 1, 3}, {2, 5}, {4}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rounds = %v, want %v", got, want)
	}
}
