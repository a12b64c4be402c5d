//! The byte codec of the migration state (vhost-user device state): little-endian integers
//! and length-prefixed byte strings, written by [`Encoder`] and read back by [`Decoder`].
//!
//! The state comes from another daemon through the frontend, so the decoder treats it as
//! untrusted: every read is bounds-checked, and a count read from the blob never sizes an
//! allocation beyond what the remaining bytes can hold.

/// Errors decoding a migration state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error(
        "the migration state ends early ({wanted} more bytes wanted at offset {at}): it was \
         cut in transfer or does not come from vhostfsd"
    )]
    Truncated { at: usize, wanted: usize },
    #[error(
        "the migration state does not start with vhostfsd's magic: it comes from another \
         backend (e.g. virtiofsd), whose state vhostfsd cannot read"
    )]
    BadMagic,
    #[error(
        "the migration state has version {0}, this vhostfsd reads version {1}: migrate to a \
         vhostfsd at least as new as the source"
    )]
    UnsupportedVersion(u32, u32),
    #[error("the migration state holds {0} bytes after its end: it is corrupt")]
    TrailingBytes(usize),
    #[error("the migration state is corrupt: {0}")]
    Invalid(&'static str),
}

/// Appends values to a state blob.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty blob.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends raw bytes with no length prefix.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a byte string with a `u32` length prefix.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).expect("state strings are far below 4 GiB"));
        self.raw(v)
    }

    /// The blob.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads values from a state blob, failing at the first out-of-bounds read.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// [`StateError::Truncated`] when fewer remain.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(StateError::Truncated {
                at: self.pos,
                wanted: n,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A `u8`.
    ///
    /// # Errors
    /// [`StateError::Truncated`].
    pub fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.raw(1)?[0])
    }

    /// A little-endian `u32`.
    ///
    /// # Errors
    /// [`StateError::Truncated`].
    pub fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(
            self.raw(4)?.try_into().expect("4 bytes"),
        ))
    }

    /// A little-endian `u64`.
    ///
    /// # Errors
    /// [`StateError::Truncated`].
    pub fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(
            self.raw(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A byte string with a `u32` length prefix.
    ///
    /// # Errors
    /// [`StateError::Truncated`], also when the prefix claims more than remains.
    pub fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let n = self.u32()? as usize;
        self.raw(n)
    }

    /// A count of items each at least `min_item` bytes long, checked against the bytes
    /// left, so that a corrupt count cannot make the caller allocate more than the blob
    /// could describe.
    ///
    /// # Errors
    /// [`StateError::Truncated`] when the items cannot fit in what remains.
    pub fn count(&mut self, min_item: usize) -> Result<usize, StateError> {
        let n = self.u64()?;
        let left = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item.max(1)) <= left => Ok(n),
            _ => Err(StateError::Truncated {
                at: self.pos,
                wanted: usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(min_item.max(1)),
            }),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks that every byte was read.
    ///
    /// # Errors
    /// [`StateError::TrailingBytes`].
    pub fn finish(self) -> Result<(), StateError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(StateError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut e = Encoder::new();
        e.u8(7).u32(0xdead_beef).u64(u64::MAX).bytes(b"name").u64(2);
        let blob = e.finish();
        let mut d = Decoder::new(&blob);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.u32(), Ok(0xdead_beef));
        assert_eq!(d.u64(), Ok(u64::MAX));
        assert_eq!(d.bytes(), Ok(&b"name"[..]));
        // Two items of 8 bytes do not fit in the 0 bytes left.
        assert!(matches!(d.count(8), Err(StateError::Truncated { .. })));
        assert!(d.u8().is_err());

        let mut d = Decoder::new(&blob[..10]);
        d.u8().unwrap();
        d.u32().unwrap();
        assert!(matches!(
            d.u64(),
            Err(StateError::Truncated { at: 5, wanted: 8 })
        ));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        let mut e = Encoder::new();
        e.u32(u32::MAX).u64(u64::MAX);
        let blob = e.finish();
        assert!(Decoder::new(&blob).bytes().is_err());
        let mut d = Decoder::new(&blob[4..]);
        assert!(d.count(1).is_err());
        let mut d = Decoder::new(&blob[4..]);
        assert!(d.count(0).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let d = Decoder::new(&[1]);
        assert_eq!(d.finish(), Err(StateError::TrailingBytes(1)));
    }
}
