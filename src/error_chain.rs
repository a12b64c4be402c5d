//! An error with the causes under it (its `#[source]` chain), for what an operator reads:
//! the errno under "cannot listen on ..." is usually what tells them what to fix.

use std::error::Error;

/// The causes under `e`, nearest first (not `e` itself).
pub fn causes<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(e.source(), |&c| c.source())
}

/// `e` and its causes on one line, separated by ": " (for a log line).
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    for c in causes(e) {
        out.push_str(": ");
        out.push_str(&c.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on /run/x.sock")]
    struct Listen(#[source] io::Error);

    #[test]
    fn every_cause_is_shown_nearest_first() {
        let e = Listen(io::Error::from_raw_os_error(libc::EACCES));
        let shown: Vec<String> = causes(&e).map(|c| c.to_string()).collect();
        assert_eq!(shown, ["Permission denied (os error 13)"]);
        assert_eq!(
            one_line(&e),
            "cannot listen on /run/x.sock: Permission denied (os error 13)"
        );
    }
}
