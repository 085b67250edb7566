// Package linkemu emulates the properties of a lab link: delay, jitter,
// loss and rate, per direction, changeable while traffic flows.
//
// The kernels the lab runs on may lack netem, so packets are held in user
// space. A link is two veth pairs that meet in a relay namespace:
//
//	A netns: A.Iface ── veth ── relay netns: xa ⇄ relay ⇄ xb ── veth ── B netns: B.Iface
//
// A link's rate is the kernel's: a tbf on the sending node's interface
// (see shape). For each direction a reader takes frames off one relay-side
// veth through an AF_PACKET socket, decides their fate (loss) and their due
// time (delay ± jitter, never before the frame ahead of them: a link does
// not reorder), and a sender
// writes them to the other relay-side veth when they are due. Arrival is
// the kernel's receive timestamp, so the reader's own scheduling latency
// does not add to the delay; the sender waits on a timerfd and spins,
// yielding, the last stretch that nearly all wake-ups overshoot by (see
// sleeper).
//
// The relay is a user-space process: when the machine's processors are
// busy, frames leave late. DirStats.MaxLate and the distribution
// DirStats.Late say by how much.
//
// Offloads (checksum, scatter-gather, TSO, GSO, GRO) are turned off on all
// four veth ends: a relay that copies frames cannot pass on a 64 KiB GSO
// super-frame or a frame whose checksum the sender left to the hardware.
package linkemu
