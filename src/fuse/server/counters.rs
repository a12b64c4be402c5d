//! Requests received, per opcode, for the operator (printed at exit and on SIGUSR1) and for
//! tests that show which requests reach the daemon (e.g. no READ/WRITE while the guest
//! does DAX I/O).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::fuse::abi::opcode;

/// Opcodes counted one by one; anything above lands in the last slot ("UNKNOWN").
const SLOTS: usize = opcode::COPY_FILE_RANGE_64 as usize + 2;

/// One counter per opcode.
#[derive(Debug)]
pub struct OpcodeCounters([AtomicU64; SLOTS]);

impl Default for OpcodeCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl OpcodeCounters {
    /// Counts one request with opcode `op`.
    pub fn count(&self, op: u32) {
        let slot = (op as usize).min(SLOTS - 1);
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The opcodes seen so far, by name, with their counts (opcodes never seen are left out).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                let name = if i == SLOTS - 1 {
                    "UNKNOWN"
                } else {
                    opcode::name(i as u32)
                };
                (n > 0).then_some((name, n))
            })
            .collect()
    }

    /// One line for the log: `NAME=count` for each opcode seen, in opcode order.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .snapshot()
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_opcode_and_folds_unknown_ones() {
        let c = OpcodeCounters::default();
        assert_eq!(c.summary(), "none");
        c.count(opcode::READ);
        c.count(opcode::READ);
        c.count(opcode::SETUPMAPPING);
        c.count(4000);
        c.count(u32::MAX);
        assert_eq!(
            c.snapshot(),
            vec![("READ", 2), ("SETUPMAPPING", 1), ("UNKNOWN", 2)]
        );
        assert_eq!(c.summary(), "READ=2 SETUPMAPPING=1 UNKNOWN=2");
    }
}
