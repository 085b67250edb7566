package classify

// The C sources compile with Debian's clang-14 against libbpf-dev's headers;
// the multiarch include path supplies <asm/types.h>. classify.sum records the
// sources' SHA-256 so a test can tell, without clang, that the committed
// objects are stale.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type rule_entry -type tuple_match -type counter -type ue_key -type ue_path -type config -type ue_net classify classify.c
//go:generate sh -c "sha256sum classify.c classify.h steer.h return_path.h > classify.sum"
