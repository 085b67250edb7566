// Package stamplab measures, in the lab, how close STAMP's round trips
// (latency/stamp, run as `mec-labsim stamp-probe` in a node) come to a
// link's configured delay, with kernel and with user-space stamps, on an
// idle and on a busy node. It holds only that test.
package stamplab
