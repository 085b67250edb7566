package qos

// Built like traffic/classify: Debian's clang-14 against libbpf-dev's
// headers, with the multiarch include path for <asm/types.h>. qos.sum records
// the sources' SHA-256 so that a test can tell, without clang, that the
// committed objects are stale.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type addr_key -type settings qos qos.c
//go:generate sh -c "sha256sum qos.c qos.h > qos.sum"
