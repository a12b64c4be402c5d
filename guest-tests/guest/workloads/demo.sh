# Non-interactive demo: write a file the user then sees on the host, list the share, power off.
echo "vhostfsd-guest: the host directory is mounted at /mnt:"
ls -la "$MNT"
{
    echo "Hello from the guest!"
    echo "kernel: $(uname -r)"
    echo "written at guest uptime $(cut -d' ' -f1 /proc/uptime)s through virtio-fs tag $TAG"
} > "$MNT/hello-from-guest.txt" || exit 1
echo "vhostfsd-guest: wrote /mnt/hello-from-guest.txt:"
cat "$MNT/hello-from-guest.txt"
