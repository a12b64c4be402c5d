//! Sharded tables: the handle table and the inode store split their maps over [`SHARDS`]
//! independently locked shards, so requests on different queues (different threads) almost
//! never wait for each other or bounce one lock's cache line, and a growing table rehashes
//! one small shard at a time instead of stalling every request behind a million-entry
//! rehash. Each shard is a reader-writer lock: requests that only find an entry (GETATTR,
//! READ, ...) never wait for each other, even on one inode.
//!
//! An id lives in the shard its low [`SHARD_BITS`] bits name ([`shard_of`]); consecutive
//! ids land in consecutive shards. A map keyed by something else (a host inode identity)
//! picks the shard from the middle bits of the key's hash ([`shard_of_hash`]), bits the
//! shard's own hash table does not use for its bucket index (low bits) or its tag (top 7
//! bits), so the keys of one shard still spread over all of its buckets. The maps hash with
//! [`IdHasher`], a fast 64-bit mixer: the keys are ids the daemon itself hands out and host
//! inode identities, never bytes the guest chooses.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The largest id (node id, file handle) a table gives out or restores. Far beyond what a
/// daemon can count up to, it keeps a counter restored from a migration state (which says
/// where to go on from) from wrapping around to 0, the root's id, or ids in use.
pub const MAX_ID: u64 = u64::MAX >> 1;

/// Bits of an id that name its shard.
pub const SHARD_BITS: u32 = 6;
/// Number of shards.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// The shard an id lives in.
pub fn shard_of(id: u64) -> usize {
    (id & (SHARDS as u64 - 1)) as usize
}

/// The shard of a key whose [`hash_of`] is `hash`.
pub fn shard_of_hash(hash: u64) -> usize {
    ((hash >> 32) & (SHARDS as u64 - 1)) as usize
}

/// One shard on its own cache line, so that two shards' locks never share one.
#[repr(align(64))]
struct Padded<T>(RwLock<T>);

/// [`SHARDS`] independently locked values.
pub struct Shards<T> {
    shards: Box<[Padded<T>]>,
}

impl<T> Shards<T> {
    /// Shards made by `make(shard index)`.
    pub fn new(make: impl Fn(usize) -> T) -> Self {
        Self {
            shards: (0..SHARDS).map(|i| Padded(RwLock::new(make(i)))).collect(),
        }
    }

    // Every update under these locks is a few infallible map operations, so a lock
    // poisoned by a panic elsewhere still guards a consistent map.

    /// Locks shard `i` (taken modulo [`SHARDS`]) to change it.
    pub fn write(&self, i: usize) -> RwLockWriteGuard<'_, T> {
        self.shards[i % SHARDS]
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Locks shard `i` (taken modulo [`SHARDS`]) to read it.
    pub fn read(&self, i: usize) -> RwLockReadGuard<'_, T> {
        self.shards[i % SHARDS]
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the shard of `id` to change it.
    pub fn write_id(&self, id: u64) -> RwLockWriteGuard<'_, T> {
        self.write(shard_of(id))
    }

    /// Locks the shard of `id` to read it.
    pub fn read_id(&self, id: u64) -> RwLockReadGuard<'_, T> {
        self.read(shard_of(id))
    }

    /// Every shard in turn, to read (counts, snapshots).
    pub fn each(&self) -> impl Iterator<Item = RwLockReadGuard<'_, T>> {
        (0..SHARDS).map(|i| self.read(i))
    }

    /// Every shard in turn, to change (clearing).
    pub fn each_mut(&self) -> impl Iterator<Item = RwLockWriteGuard<'_, T>> {
        (0..SHARDS).map(|i| self.write(i))
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
    fn consecutive_ids_use_every_shard() {
        let used: HashSet<usize> = (1..=SHARDS as u64).map(shard_of).collect();
        assert_eq!(used.len(), SHARDS);
        assert_eq!(shard_of((7 << SHARD_BITS) | 5), 5);
    }

    #[test]
    fn ids_of_one_shard_spread_over_hash_buckets() {
        // Ids of one shard share their low bits; their hashes must not.
        let low: HashSet<u64> = (1..4096u64)
            .map(|n| hash_of(&((n << SHARD_BITS) | 5)) & 1023)
            .collect();
        assert!(low.len() > 900, "only {} of 1024 buckets used", low.len());
    }

    #[test]
    fn keys_of_one_shard_spread_over_hash_buckets_and_tags() {
        // The shard comes from bits the shard's table uses for neither its bucket index
        // (low bits) nor its 7-bit tag (top bits): keys of one shard must still vary there.
        let in_shard: Vec<u64> = (0..200_000u64)
            .map(|ino| hash_of(&(1u64, ino, 7u64)))
            .filter(|h| shard_of_hash(*h) == 9)
            .collect();
        assert!(in_shard.len() > 2000, "{} keys in shard 9", in_shard.len());
        let buckets: HashSet<u64> = in_shard.iter().map(|h| h & 1023).collect();
        let tags: HashSet<u64> = in_shard.iter().map(|h| h >> 57).collect();
        assert!(
            buckets.len() > 850,
            "only {} of 1024 buckets",
            buckets.len()
        );
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn shards_lock_independently() {
        let s = Shards::new(|i| i);
        let a = s.write(3);
        let b = s.write(4);
        assert_eq!((*a, *b), (3, 4));
        drop((a, b));
        // Readers of one shard do not wait for each other.
        let r1 = s.read_id((9 << SHARD_BITS) | 7);
        let r2 = s.read(7);
        assert_eq!((*r1, *r2), (7, 7));
        drop((r1, r2));
        assert_eq!(*s.write_id(7), 7);
        assert_eq!(s.each().count(), SHARDS);
        assert_eq!(s.each_mut().count(), SHARDS);
    }
}
