//go:build !race

package rawio

func released() {}
func acquired() {}
