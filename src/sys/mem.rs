//! Where the big tables live: a fixed-length array ([`BigArray`]) whose
//! memory comes from a [`Memory`]: the process heap with the
//! transparent-huge-page hint, or a [`Backing`] such as DPDK's own
//! hugepage heap on the RX port's NUMA node (`crate::dpdk::memory`), with
//! or without a fall-back to the heap when the backing has no room. The
//! tables (`lb`) see only this module, never DPDK. Built once at start;
//! indexing is a plain slice, with no branch on where the memory came from.

use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

/// A source of large, long-lived allocations other than the process heap.
pub trait Backing: Send + Sync + fmt::Debug {
    /// `layout.size()` bytes aligned to `layout.align()`, or `None` when
    /// the backing has no room. The contents need not be initialised.
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>>;

    /// Gives back memory [`Backing::alloc`] returned.
    ///
    /// # Safety
    /// `p` came from `alloc` of this backing and is freed once, with no
    /// reference into it left.
    unsafe fn free(&self, p: NonNull<u8>);

    /// What the memory is, for messages: "DPDK memory on socket 0".
    fn describe(&self) -> String;
}

/// Where a [`BigArray`] asks for its memory.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    backing: Option<Arc<dyn Backing>>,
    fallback: bool,
}

impl Memory {
    /// The process heap, with `MADV_HUGEPAGE` asked before first touch.
    pub fn heap() -> Memory {
        Memory::default()
    }

    /// `backing`; when it has no room, the heap if `fallback`, else an
    /// error.
    pub fn from(backing: Arc<dyn Backing>, fallback: bool) -> Memory {
        Memory {
            backing: Some(backing),
            fallback,
        }
    }

    /// What the first choice is, for messages.
    pub fn describe(&self) -> String {
        self.backing
            .as_ref()
            .map_or_else(|| HEAP.to_string(), |b| b.describe())
    }
}

const HEAP: &str = "the process heap";

/// A backing had no room and no fall-back was allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemError {
    /// Bytes asked for.
    pub bytes: usize,
    /// Where: [`Backing::describe`].
    pub place: String,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} has no room for {} bytes ({})",
            self.place,
            self.bytes,
            mib(self.bytes)
        )
    }
}

impl std::error::Error for MemError {}

/// `bytes` as "12.5 MiB".
pub fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Where an array's memory came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The backing (its description).
    Backing(String),
    /// The heap, as asked.
    Heap,
    /// The heap, because the backing (described) had no room.
    FellBack(String),
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Backing(d) => f.write_str(d),
            Placement::Heap => f.write_str(HEAP),
            Placement::FellBack(d) => write!(f, "{HEAP} ({d} had no room)"),
        }
    }
}

/// A fixed-length array of `T`, filled at construction, in memory from a
/// [`Memory`]. Dereferences to `[T]`.
pub struct BigArray<T> {
    ptr: NonNull<T>,
    len: usize,
    /// `None`: the heap (a `Box<[T]>` taken apart).
    backing: Option<Arc<dyn Backing>>,
    placement: Placement,
}

// SAFETY: a BigArray owns its elements exactly as a Box<[T]> does; the
// backing is Send + Sync by its trait's bounds.
unsafe impl<T: Send> Send for BigArray<T> {}
// SAFETY: as above; shared access only hands out &T.
unsafe impl<T: Sync> Sync for BigArray<T> {}

impl<T> BigArray<T> {
    /// `len` elements, element `i` being `f(i)`, in `mem`. Fails only when
    /// `mem`'s backing has no room and it allows no fall-back (the heap
    /// aborts the process when it has none, as `Vec` does).
    pub fn from_fn(
        mem: &Memory,
        len: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Result<Self, MemError> {
        let layout = Layout::array::<T>(len).map_err(|_| MemError {
            bytes: usize::MAX,
            place: mem.describe(),
        })?;
        if let Some(b) = &mem.backing {
            if layout.size() > 0 {
                if let Some(p) = b.alloc(layout) {
                    let ptr = p.cast::<T>();
                    for i in 0..len {
                        // SAFETY: `i < len` lies inside the allocation of
                        // `len` elements, aligned for T; each slot is
                        // written once, before any read.
                        unsafe { ptr.as_ptr().add(i).write(f(i)) };
                    }
                    return Ok(BigArray {
                        ptr,
                        len,
                        backing: Some(Arc::clone(b)),
                        placement: Placement::Backing(b.describe()),
                    });
                }
                if !mem.fallback {
                    return Err(MemError {
                        bytes: layout.size(),
                        place: b.describe(),
                    });
                }
            }
        }
        // Reserve untouched memory, ask for huge pages, then fill: random
        // probes of a large table otherwise miss the TLB on nearly every
        // access.
        let mut v = Vec::with_capacity(len);
        crate::sys::advise_hugepages(v.as_ptr() as *const u8, layout.size());
        v.extend((0..len).map(&mut f));
        let placement = match &mem.backing {
            Some(b) if layout.size() > 0 => Placement::FellBack(b.describe()),
            _ => Placement::Heap,
        };
        let boxed = Box::into_raw(v.into_boxed_slice());
        Ok(BigArray {
            // SAFETY: Box::into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(boxed as *mut T) },
            len,
            backing: None,
            placement,
        })
    }

    /// Where the memory came from.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The array's size in bytes.
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }
}

impl<T> std::ops::Deref for BigArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised elements owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for BigArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for BigArray<T> {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        match &self.backing {
            // SAFETY: the heap case is a Box<[T]> taken apart in from_fn,
            // put back together once.
            None => drop(unsafe { Box::from_raw(slice) }),
            Some(b) => {
                // SAFETY: the elements were initialised in from_fn and are
                // dropped once; then the memory goes back to the backing
                // it came from, with no reference left into it.
                unsafe {
                    std::ptr::drop_in_place(slice);
                    b.free(self.ptr.cast());
                }
            }
        }
    }
}

impl<T> fmt::Debug for BigArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BigArray")
            .field("len", &self.len)
            .field("placement", &self.placement)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A backing over the global allocator that counts what it hands out
    /// and can be told to have no room.
    #[derive(Debug, Default)]
    struct Counting {
        full: bool,
        live: AtomicUsize,
        layouts: Mutex<Vec<(usize, Layout)>>,
    }

    impl Backing for Counting {
        fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
            if self.full {
                return None;
            }
            // SAFETY: the layout's size is non-zero (BigArray asks only then).
            let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
            self.live.fetch_add(1, Ordering::SeqCst);
            self.layouts
                .lock()
                .unwrap()
                .push((p.as_ptr() as usize, layout));
            Some(p)
        }
        unsafe fn free(&self, p: NonNull<u8>) {
            let mut ls = self.layouts.lock().unwrap();
            let i = ls
                .iter()
                .position(|(a, _)| *a == p.as_ptr() as usize)
                .expect("freed twice or foreign");
            let (_, layout) = ls.swap_remove(i);
            // SAFETY: p came from alloc with this layout.
            unsafe { std::alloc::dealloc(p.as_ptr(), layout) };
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
        fn describe(&self) -> String {
            "the test backing".into()
        }
    }

    #[repr(align(64))]
    struct Wide {
        v: u64,
        _token: Arc<()>,
    }

    #[test]
    fn backing_holds_the_elements_and_gets_them_back() {
        let b = Arc::new(Counting::default());
        let token = Arc::new(());
        let mem = Memory::from(b.clone(), false);
        let a = BigArray::from_fn(&mem, 1000, |i| Wide {
            v: i as u64 * 3,
            _token: token.clone(),
        })
        .unwrap();
        assert_eq!(
            a.placement(),
            &Placement::Backing("the test backing".into())
        );
        assert_eq!(a.len(), 1000);
        assert_eq!(a.bytes(), 64_000);
        assert_eq!(a.as_ptr() as usize % 64, 0);
        assert!(a.iter().enumerate().all(|(i, w)| w.v == i as u64 * 3));
        assert_eq!(b.live.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&token), 1001);
        drop(a);
        assert_eq!(b.live.load(Ordering::SeqCst), 0, "memory went back");
        assert_eq!(Arc::strong_count(&token), 1, "every element dropped");
    }

    #[test]
    fn a_full_backing_falls_back_or_fails_as_asked() {
        let full = Arc::new(Counting {
            full: true,
            ..Counting::default()
        });
        let a = BigArray::from_fn(&Memory::from(full.clone(), true), 100, |i| i as u32).unwrap();
        assert_eq!(
            a.placement(),
            &Placement::FellBack("the test backing".into())
        );
        assert_eq!(
            a.placement().to_string(),
            "the process heap (the test backing had no room)"
        );
        assert_eq!(a[99], 99);
        let e = BigArray::from_fn(&Memory::from(full, false), 100, |i| i as u32).unwrap_err();
        assert_eq!(e.bytes, 400);
        assert_eq!(
            e.to_string(),
            "the test backing has no room for 400 bytes (0.0 MiB)"
        );
    }

    #[test]
    fn heap_arrays_are_writable_and_dropped() {
        let token = Arc::new(());
        let mut a = BigArray::from_fn(&Memory::heap(), 10, |_| (0u8, token.clone())).unwrap();
        a[3].0 = 7;
        assert_eq!(a.iter().map(|x| x.0 as u32).sum::<u32>(), 7);
        assert_eq!(a.placement(), &Placement::Heap);
        drop(a);
        assert_eq!(Arc::strong_count(&token), 1);
        let empty = BigArray::<u64>::from_fn(&Memory::heap(), 0, |_| 0).unwrap();
        assert!(empty.is_empty());
    }
}
