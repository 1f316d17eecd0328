//! 32-bit x86 only: the client's Rust heap is DynamoRIO's, for every layout.
//!
//! DynamoRIO's private loader binds `malloc`, `calloc`, `realloc` and `free`
//! of every private library (libptap.so included) to its own heap, but not
//! `posix_memalign` (`redirect_imports` in `core/unix/loader.c`, i#4243),
//! which stays the private glibc's. Rust's system allocator asks
//! `posix_memalign` for layouts aligned above its `MIN_ALIGN`, 16 on x86-64
//! (so almost never) but 8 on i686, where every 16-aligned value took a
//! glibc block that DynamoRIO's `free` later released: glibc aborted with
//! "malloc(): corrupted top size" once the heap grew (a script with a probe,
//! with the `ptap` package compiled from source).
//!
//! DynamoRIO's `malloc` returns blocks aligned to STANDARD_HEAP_ALIGNMENT,
//! twice the pointer size: 8 here. Layouts up to that go to it as they are;
//! larger alignments (hashbrown's 16-aligned control bytes, read with
//! `movdqa`) take a larger block and keep its start just below the aligned
//! pointer.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment of DynamoRIO's redirected `malloc` on 32-bit x86.
const MALLOC_ALIGN: usize = 8;

struct DynamoRioHeap;

unsafe impl GlobalAlloc for DynamoRioHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return libc::malloc(layout.size()) as *mut u8;
        }
        let raw = libc::malloc(layout.size() + layout.align()) as usize;
        if raw == 0 {
            return std::ptr::null_mut();
        }
        // raw is 8-aligned and align >= 16: at least 8 bytes lie between.
        let aligned = (raw + layout.align()) & !(layout.align() - 1);
        *(aligned as *mut usize).sub(1) = raw;
        aligned as *mut u8
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return libc::calloc(1, layout.size()) as *mut u8;
        }
        let p = self.alloc(layout);
        if !p.is_null() {
            std::ptr::write_bytes(p, 0, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() <= MALLOC_ALIGN {
            libc::free(ptr as *mut c_void);
        } else {
            libc::free(*(ptr as *mut usize).sub(1) as *mut c_void);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return libc::realloc(ptr as *mut c_void, new_size) as *mut u8;
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[global_allocator]
static HEAP: DynamoRioHeap = DynamoRioHeap;
