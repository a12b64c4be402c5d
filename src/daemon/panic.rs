//! A panic anywhere in the daemon stops the process.
//!
//! A panic is a bug. Left to unwind, it would end one thread only: a queue's worker (its
//! queue is then never served again), a pool thread (its request never completes and the
//! pool shrinks without a word) or the signal thread (SIGTERM is then ignored). The hook
//! logs the panic through the daemon's logger and aborts, in debug and release builds
//! alike; nothing in the daemon relies on catching an unwinding panic. Library users and
//! unit tests, which never install the hook, keep unwinding.

/// Installs the hook: log the panic, then abort the process.
pub fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "thread {:?} panicked ({info}): aborting, as a thread that stops serving would \
             leave requests without replies",
            thread.name().unwrap_or("unnamed")
        );
        std::process::abort();
    }));
}

#[cfg(test)]
mod tests {
    use crate::test_support::{is_child, run_in_child};

    #[test]
    fn a_panicking_thread_stops_the_process() {
        if is_child() {
            super::abort_on_panic();
            let _ = std::thread::spawn(|| panic!("a bug")).join();
            println!("the process went on");
            return;
        }
        let out = run_in_child("daemon::panic::tests::a_panicking_thread_stops_the_process");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("went on"), "child output: {stdout}");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGABRT),
            "the child ended with {:?}",
            out.status
        );
    }
}
