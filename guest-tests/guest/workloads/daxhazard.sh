# The host-truncation hazard (docs/dax.md), run by hand: the guest maps dax-host.bin with
# -o dax=always, the host truncates it (runner: touch GO after truncating), the guest reads
# the mapping again. Prints what happened; not part of the CI matrix (the VMM may die).
. /workloads/common.sh
checker dax-hold "$MNT/dax-host.bin" "$MNT/READY" "$MNT/GO"
