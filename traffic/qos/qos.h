/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by qos.c and, through bpf2go, by the Go side. */
#ifndef QOS_H
#define QOS_H

#include <linux/types.h>

/* How many addresses one attachment can shape; the hash map is sized once at
 * load time, and an edge host runs far fewer app instances than this. */
#define MAX_ADDRS 4096

#define QOS_BY_SOURCE 0
#define QOS_BY_DESTINATION 1

/* An IP address in 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so
 * that one map serves both families and Go's netip.Addr.As16 fills it. */
struct addr_key {
	__u8 addr[16];
};

/* Per attachment: which address identifies the app instance, and the class
 * that everything else goes to. Written by Go before the program is attached
 * (and on nothing else), so it is read without locking. */
struct settings {
	__u32 direction;     /* QOS_BY_SOURCE or QOS_BY_DESTINATION */
	__u32 default_class; /* TC_H_MAKE(major, minor) of the default class */
};

#endif
