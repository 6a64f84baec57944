package execution

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// Lifecycle event kinds.
const (
	EventStateMutation  = "StateMutation"
	EventContextCreated = "ContextCreated"
	EventContextDeleted = "ContextDeleted"
	EventMembersChanged = "MembersChanged"
)

// CreateOptions are the optional parts of a new context.
type CreateOptions struct {
	Init    json.RawMessage // args of the app's init export, if any
	Members []string        // normalized keys
	Public  bool
}

// CreateContext makes a context of app appID (owner only): it runs the app's init on
// empty state and stores the context with its genesis tx.
func (s *Service) CreateContext(ctx context.Context, tenant string, c Caller, appID string, opt CreateOptions) (store.Context, error) {
	if err := requireOwner(c); err != nil {
		return store.Context{}, err
	}
	if _, err := s.store.GetApp(ctx, tenant, appID); err != nil {
		return store.Context{}, err
	}
	id := newID()
	now := s.now().UTC()
	res, err := s.runInit(ctx, tenant, appID, id, c.PubKey, opt.Init, now)
	if err != nil {
		return store.Context{}, err
	}
	created, _ := json.Marshal(map[string]any{"appId": appID, "owner": c.PubKey, "members": nonNil(opt.Members), "public": opt.Public})
	tx := store.Tx{
		Seq: 0, ID: newID(), PrevHash: store.GenesisPrevHash, Method: "init",
		ArgsDigest: digest(opt.Init), Caller: c.PubKey, Time: now, Writes: res.Writes,
	}
	tx.Events = append(tx.Events, store.Event{Kind: EventContextCreated, Data: created})
	tx.Events = append(tx.Events, appEvents(res.Events)...)
	finishTx(&tx, id, 0)
	meta := store.Context{
		ID: id, Tenant: tenant, AppID: appID, Owner: c.PubKey, Members: nonNil(opt.Members),
		Public: opt.Public, CreatedAt: now, Seq: 0, RootHash: tx.Hash, EventSeq: uint64(len(tx.Events)),
	}
	if err := s.store.CreateContext(ctx, meta, tx); err != nil {
		return store.Context{}, err
	}
	s.publishStored(ctx, tenant, tx.Events)
	return meta, nil
}

func (s *Service) runInit(ctx context.Context, tenant, appID, contextID, caller string, args json.RawMessage, now time.Time) (Result, error) {
	res, err := s.engine.Run(ctx, Call{
		Tenant: tenant, AppID: appID, Wasm: s.blob(tenant, appID), Method: "init", Args: args,
		Caller: caller, ContextID: contextID, Time: now, State: emptyState{},
	})
	if err != nil && len(args) == 0 && errs.KindOf(err) == errs.InvalidParams && strings.Contains(err.Error(), "unknown method") {
		return Result{}, nil // no init export and nothing to pass it
	}
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ListContexts returns the contexts the caller may read: all of them for the owner,
// else those it is a member of and the public ones.
func (s *Service) ListContexts(ctx context.Context, tenant string, c Caller) ([]store.Context, error) {
	all, err := s.store.ListContexts(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for i := range all {
		if roleIn(c, &all[i]) >= roleReader {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// GetContext returns a context the caller may read.
func (s *Service) GetContext(ctx context.Context, tenant string, c Caller, id string) (store.Context, error) {
	return s.context(ctx, tenant, c, id, roleReader)
}

// DeleteContext removes a context and everything in it (owner only).
func (s *Service) DeleteContext(ctx context.Context, tenant string, c Caller, id string) error {
	meta, err := s.context(ctx, tenant, c, id, roleOwner)
	if err != nil {
		return err
	}
	err = s.store.DeleteContext(ctx, tenant, id)
	s.forgetMeta(tenant, id)
	if err != nil {
		return err
	}
	s.publish(ctx, tenant, []store.Event{{ContextID: id, Seq: meta.EventSeq + 1, Kind: EventContextDeleted, Time: s.now().UTC()}})
	return nil
}

// UpdateMembers adds and removes members of a context (owner only).
func (s *Service) UpdateMembers(ctx context.Context, tenant string, c Caller, id string, add, remove []string) (store.Context, error) {
	if _, err := s.context(ctx, tenant, c, id, roleOwner); err != nil {
		return store.Context{}, err
	}
	data, _ := json.Marshal(map[string][]string{"added": nonNil(add), "removed": nonNil(remove)})
	ev := store.Event{ContextID: id, Kind: EventMembersChanged, Data: data, Time: s.now().UTC()}
	meta, ev, err := s.store.UpdateMembers(ctx, tenant, id, add, remove, ev)
	s.forgetMeta(tenant, id)
	if err != nil {
		return store.Context{}, err
	}
	s.publishStored(ctx, tenant, []store.Event{ev})
	return meta, nil
}

// StorageInfo is the size and head of a context's state.
type StorageInfo struct {
	Keys     int64  `json:"keys"`
	Bytes    int64  `json:"bytes"`
	Seq      uint64 `json:"seq"`
	RootHash string `json:"rootHash"`
}

// Storage returns the size of a context's state (readers).
func (s *Service) Storage(ctx context.Context, tenant string, c Caller, id string) (StorageInfo, error) {
	meta, err := s.context(ctx, tenant, c, id, roleReader)
	if err != nil {
		return StorageInfo{}, err
	}
	keys, n, err := s.store.StateSize(ctx, id)
	if err != nil {
		return StorageInfo{}, err
	}
	return StorageInfo{Keys: keys, Bytes: n, Seq: meta.Seq, RootHash: meta.RootHash}, nil
}

func (s *Service) publish(ctx context.Context, tenant string, events []store.Event) {
	if s.pub != nil && len(events) > 0 {
		s.pub.Publish(ctx, tenant, events)
	}
}

// publishStored publishes events that a store write just made durable, unless the
// store published them itself in that write (the Redis store does).
func (s *Service) publishStored(ctx context.Context, tenant string, events []store.Event) {
	if !s.storePublishes {
		s.publish(ctx, tenant, events)
	}
}

// selfPublishing is a store whose writes publish the events they store, atomically
// with the write; the service then publishes only the events no write stores.
type selfPublishing interface{ PublishesEvents() bool }
