//go:build !linux

package execution

func adviseHugePages([]byte) {}
