//! Sharded tables: the handle table splits its map over [`SHARDS`] independently locked
//! shards, so requests on different queues (different threads) almost never wait for each
//! other or bounce one lock's cache line, and a growing table rehashes one small shard at a
//! time instead of stalling every request behind a million-entry rehash.
//!
//! An id carries its shard in its low [`SHARD_BITS`] bits, so finding an entry by id needs
//! no other lookup. The maps hash with [`IdHasher`], a fast 64-bit mixer: the keys are ids
//! the daemon itself hands out and host inode identities, never bytes the guest chooses.
//! (The inode store is not sharded yet: its ids are restored as-is by migration, so an id
//! cannot be made to name the shard of its key.)

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

/// Bits of an id that name its shard.
pub const SHARD_BITS: u32 = 6;
/// Number of shards.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// The shard an id lives in.
pub fn shard_of(id: u64) -> usize {
    (id & (SHARDS as u64 - 1)) as usize
}

/// The id numbered `n` (counted per shard) in shard `shard`.
pub fn make_id(n: u64, shard: usize) -> u64 {
    (n << SHARD_BITS) | shard as u64
}

/// One shard on its own cache line, so that two shards' locks never share one.
#[repr(align(64))]
struct Padded<T>(Mutex<T>);

/// [`SHARDS`] independently locked values.
pub struct Shards<T> {
    shards: Box<[Padded<T>]>,
}

impl<T> Shards<T> {
    /// Shards made by `make(shard index)`.
    pub fn new(make: impl Fn(usize) -> T) -> Self {
        Self {
            shards: (0..SHARDS).map(|i| Padded(Mutex::new(make(i)))).collect(),
        }
    }

    /// Locks shard `i` (taken modulo [`SHARDS`]).
    pub fn lock(&self, i: usize) -> MutexGuard<'_, T> {
        // Every update under these locks is a few infallible map operations, so a lock
        // poisoned by a panic elsewhere still guards a consistent map.
        self.shards[i % SHARDS]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the shard of `id`.
    pub fn lock_id(&self, id: u64) -> MutexGuard<'_, T> {
        self.lock(shard_of(id))
    }

    /// Every shard in turn (counts, clearing).
    pub fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        (0..SHARDS).map(|i| self.lock(i))
    }
}

/// A fast hasher for integer keys (ids, inode numbers): multiply-rotate per word and a
/// final avalanche, so that ids differing only in high bits spread over all buckets.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(K);
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    fn finish(&self) -> u64 {
        // splitmix64's finalizer.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `HashMap` hasher state for [`IdHasher`].
pub type IdHash = BuildHasherDefault<IdHasher>;

/// The hash of a value with [`IdHasher`] (to pick a shard by key).
pub fn hash_of<K: std::hash::Hash>(k: &K) -> u64 {
    let mut h = IdHasher::default();
    k.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_carry_their_shard() {
        for s in [0, 1, SHARDS - 1] {
            for n in [1, 2, 1 << 40] {
                let id = make_id(n, s);
                assert_eq!(shard_of(id), s);
                assert_eq!(id >> SHARD_BITS, n);
            }
        }
    }

    #[test]
    fn ids_of_one_shard_spread_over_hash_buckets() {
        // Ids of one shard share their low bits; their hashes must not.
        let low: HashSet<u64> = (1..4096u64)
            .map(|n| hash_of(&make_id(n, 5)) & 1023)
            .collect();
        assert!(low.len() > 900, "only {} of 1024 buckets used", low.len());
    }

    #[test]
    fn shards_lock_independently() {
        let s = Shards::new(|i| i);
        let a = s.lock(3);
        let b = s.lock(4);
        assert_eq!((*a, *b), (3, 4));
        drop((a, b));
        assert_eq!(*s.lock_id(make_id(9, 7)), 7);
        assert_eq!(s.each().count(), SHARDS);
    }
}
