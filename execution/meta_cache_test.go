package execution_test

import (
	"context"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/redistest"
)

// TestFleetRoleCheckedWhereJobsRun: a fleet gateway checks a caller's role before it
// queues a job on what it read of the context up to a second before, and the worker
// checks again: a member removed, or a context deleted, through another gateway gets
// no job through in that second; through the same gateway it is refused at once.
func TestFleetRoleCheckedWhereJobsRun(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	gw1, _ := startFleetService(t, srv, nil)
	gw2, _ := startFleetService(t, srv, nil)
	ctx := context.Background()
	owner := execution.Caller{PubKey: "owner", Owner: true}
	member := execution.Caller{PubKey: "member"}
	app, err := gw1.InstallApp(ctx, "t", owner, example(t, "counter").wasm, "counter", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := gw1.CreateContext(ctx, "t", owner, app.ID, execution.CreateOptions{Members: []string{member.PubKey}})
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(gw *execution.Service, who execution.Caller) error {
		_, err := gw.Mutate(ctx, "t", who, c.ID, "increment", nil, "")
		return err
	}
	if err := mutate(gw2, member); err != nil { // gw2 now remembers the context
		t.Fatal(err)
	}
	if _, err := gw1.UpdateMembers(ctx, "t", owner, c.ID, nil, []string{member.PubKey}); err != nil {
		t.Fatal(err)
	}
	err = mutate(gw2, member)
	if errs.KindOf(err) != errs.Forbidden || !strings.Contains(err.Error(), "may not mutate") {
		t.Fatalf("removed member through the other gateway: %v, want the worker's refusal", err)
	}

	if _, err := gw2.UpdateMembers(ctx, "t", owner, c.ID, []string{member.PubKey}, nil); err != nil {
		t.Fatal(err)
	}
	if err := mutate(gw2, member); err != nil {
		t.Fatalf("member added back through the same gateway: %v", err)
	}
	if _, err := gw2.UpdateMembers(ctx, "t", owner, c.ID, nil, []string{member.PubKey}); err != nil {
		t.Fatal(err)
	}
	err = mutate(gw2, member)
	if errs.KindOf(err) != errs.Forbidden || !strings.Contains(err.Error(), "may not do this") {
		t.Fatalf("removed member through the same gateway: %v, want the gateway's refusal", err)
	}

	if err := mutate(gw2, owner); err != nil {
		t.Fatal(err)
	}
	if err := gw1.DeleteContext(ctx, "t", owner, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := mutate(gw2, owner); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("deleted context through the other gateway: %v, want not found", err)
	}
	seq, err := gw1.Query(ctx, "t", owner, c.ID, "get", nil)
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("query of the deleted context: %s, %v", seq, err)
	}
}
