package redistest

import (
	"testing"
)

func TestRestartKeepsAppendOnlyData(t *testing.T) {
	s := Start(t, Options{AppendOnly: true})
	if r, err := s.Do("SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET = %q, %v", r, err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if r, err := s.Do("EXISTS", "k"); err != nil || r != ":1" {
		t.Fatalf("EXISTS k after restart = %q, %v; want :1", r, err)
	}
	if got := s.Info("aof_enabled"); got != "1" {
		t.Errorf("aof_enabled = %q", got)
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three redis-server processes")
	}
	c := StartCluster(t)
	for _, n := range c.Nodes {
		if got := n.field("cluster_known_nodes", "CLUSTER", "INFO"); got != "3" {
			t.Errorf("node %s knows %q nodes, want 3", n.Addr(), got)
		}
	}
}
