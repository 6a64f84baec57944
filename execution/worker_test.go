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
	got := rounds(jobs, []int{0, 1, 2, 3, 4, 5})
	// Each round has one job per context; a context's jobs keep their order.
	want := [][]int{{0, 1, 3}, {2, 5}, {4}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rounds = %v, want %v", got, want)
	}
	// Only the given indexes take part (the others were answered without running).
	if got, want := rounds(jobs, []int{1, 2, 4}), [][]int{{1, 2}, {4}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rounds of a subset = %v, want %v", got, want)
	}
}
