//! A vector with a capacity fixed at compile time, kept inline (on the stack): what the
//! request path uses instead of a `Vec` for the guest buffers of one descriptor chain and
//! the iovecs of one `preadv`/`pwritev`, so that serving a request allocates nothing and no
//! guest-chosen number decides how much memory is used. Creating one costs nothing (the
//! storage is left uninitialized); a push beyond the capacity is refused, never grown.

use std::mem::MaybeUninit;
use std::ops::Deref;

/// Up to `N` values of `T`, inline.
pub struct FixedVec<T, const N: usize> {
    items: [MaybeUninit<T>; N],
    len: usize,
}

impl<T, const N: usize> FixedVec<T, N> {
    /// An empty vector.
    pub const fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Appends `value`, or gives it back when the vector is full.
    ///
    /// # Errors
    /// The vector already holds `N` values.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                slot.write(value);
                self.len += 1;
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Drops every value.
    pub fn clear(&mut self) {
        let len = self.len;
        // Set first: should a value's drop panic, the vector is empty, not half-dropped.
        self.len = 0;
        let init = std::ptr::slice_from_raw_parts_mut(self.items.as_mut_ptr().cast::<T>(), len);
        // SAFETY: the first `len` items were initialized by `push` and are no longer
        // reachable (len is 0), so each is dropped exactly once.
        unsafe { std::ptr::drop_in_place(init) };
    }
}

impl<T, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Deref for FixedVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` items (len <= N) were initialized by `push`, and
        // MaybeUninit<T> has the layout of T.
        unsafe { std::slice::from_raw_parts(self.items.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T, const N: usize> Drop for FixedVec<T, N> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    #[test]
    fn holds_up_to_its_capacity_and_refuses_more() {
        let mut v: FixedVec<u32, 3> = FixedVec::new();
        assert!(v.is_empty());
        for i in 0..3 {
            v.push(i).unwrap();
        }
        assert_eq!(v.push(9), Err(9));
        assert_eq!(&v[..], &[0, 1, 2]);
        v.clear();
        assert!(v.is_empty());
        v.push(7).unwrap();
        assert_eq!(&v[..], &[7]);
    }

    #[test]
    fn drops_each_value_once() {
        let counted = Rc::new(());
        {
            let mut v: FixedVec<Rc<()>, 4> = FixedVec::new();
            for _ in 0..3 {
                v.push(counted.clone()).unwrap();
            }
            assert_eq!(Rc::strong_count(&counted), 4);
            v.clear();
            assert_eq!(Rc::strong_count(&counted), 1);
            v.push(counted.clone()).unwrap();
            v.push(counted.clone()).unwrap();
        }
        assert_eq!(Rc::strong_count(&counted), 1);
    }
}
