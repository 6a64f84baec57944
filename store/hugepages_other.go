//go:build !linux

package store

// adviseHugeMappings asks for huge pages only on Linux (hugepages_linux.go).
func adviseHugeMappings(int64) int { return 0 }
