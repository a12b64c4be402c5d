/work/wt/dax/guest-tests/checker/target/release/vhostfsd-guest-checker: /work/wt/dax/guest-tests/checker/src/dax.rs /work/wt/dax/guest-tests/checker/src/main.rs
