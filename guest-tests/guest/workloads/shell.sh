# Interactive busybox shell on the console; leaving it (exit or Ctrl-D) powers the VM off.
echo
echo "vhostfsd-guest: the shared directory is mounted at /mnt. 'exit' or Ctrl-D powers off."
cd "$MNT"
setsid cttyhack sh -l
exit 0
