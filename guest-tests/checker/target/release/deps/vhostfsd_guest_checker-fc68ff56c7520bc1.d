/work/wt/dax/guest-tests/checker/target/release/deps/vhostfsd_guest_checker-fc68ff56c7520bc1.d: src/main.rs src/dax.rs

/work/wt/dax/guest-tests/checker/target/release/deps/vhostfsd_guest_checker-fc68ff56c7520bc1: src/main.rs src/dax.rs

src/main.rs:
src/dax.rs:
