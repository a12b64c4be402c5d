//! The virtio-fs device configuration space (virtio spec 5.11.4): the tag the guest mounts,
//! NUL-padded to 36 bytes, then the number of request queues as a little-endian u32.

/// Bytes in the tag field.
pub const TAG_LEN: usize = 36;
/// Bytes in the whole configuration space.
pub const CONFIG_SIZE: usize = TAG_LEN + 4;

/// The configuration space bytes, built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpace([u8; CONFIG_SIZE]);

impl ConfigSpace {
    /// The configuration of a device with this tag and number of request queues; `None` if
    /// the tag is longer than [`TAG_LEN`] bytes.
    pub fn new(tag: &str, num_request_queues: u32) -> Option<Self> {
        let tag = tag.as_bytes();
        if tag.len() > TAG_LEN {
            return None;
        }
        let mut bytes = [0u8; CONFIG_SIZE];
        bytes[..tag.len()].copy_from_slice(tag);
        bytes[TAG_LEN..].copy_from_slice(&num_request_queues.to_le_bytes());
        Some(Self(bytes))
    }

    /// `size` bytes from `offset`, as GET_CONFIG asks; empty when the range is not entirely
    /// inside the configuration space.
    pub fn read(&self, offset: u32, size: u32) -> Vec<u8> {
        let start = offset as usize;
        match start.checked_add(size as usize) {
            Some(end) if end <= CONFIG_SIZE => self.0[start..end].to_vec(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_tag_then_le32_queue_count() {
        let c = ConfigSpace::new("myfs", 3).unwrap();
        let all = c.read(0, CONFIG_SIZE as u32);
        assert_eq!(all.len(), 40);
        assert_eq!(&all[..4], b"myfs");
        assert!(all[4..36].iter().all(|b| *b == 0));
        assert_eq!(&all[36..], &[3, 0, 0, 0]);
    }

    #[test]
    fn partial_reads_honour_offset_and_size() {
        let c = ConfigSpace::new("abcdef", 0x0102_0304).unwrap();
        assert_eq!(c.read(2, 3), b"cde");
        assert_eq!(c.read(36, 4), vec![4, 3, 2, 1]);
        assert_eq!(c.read(38, 2), vec![2, 1]);
        assert_eq!(c.read(40, 0), Vec::<u8>::new());
    }

    #[test]
    fn out_of_range_reads_are_empty() {
        let c = ConfigSpace::new("t", 1).unwrap();
        assert!(c.read(37, 4).is_empty());
        assert!(c.read(41, 0).is_empty());
        assert!(c.read(u32::MAX, 2).is_empty());
        assert!(c.read(0, u32::MAX).is_empty());
    }

    #[test]
    fn long_tags_are_refused() {
        assert!(ConfigSpace::new(&"x".repeat(36), 1).is_some());
        assert!(ConfigSpace::new(&"x".repeat(37), 1).is_none());
    }
}
