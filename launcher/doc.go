// Package launcher is the circlegate command line: it parses flags and the TOML
// config, wires every component, runs the server and shuts it down in order. Main is
// the whole program; tests call it with arguments and buffers, or call Start to run a
// gateway in-process on port 0.
package launcher
