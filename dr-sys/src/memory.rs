//! Memory DynamoRIO hands to the client.

use crate::ffi;

/// Read and write, no execute.
const PROT_RW: u32 = ffi::DR_MEMPROT_READ | ffi::DR_MEMPROT_WRITE;

/// Maps `size` bytes (a multiple of the page size) of zeroed read-write
/// memory that DynamoRIO accounts as its own, so the target never sees it.
pub fn raw_alloc(size: usize) -> Option<*mut u8> {
    // SAFETY: a null hint address lets DR choose; the result is checked.
    let p = unsafe { ffi::dr_raw_mem_alloc(size, PROT_RW, std::ptr::null_mut()) };
    (!p.is_null()).then_some(p as *mut u8)
}

/// Unmaps memory from [`raw_alloc`].
///
/// # Safety
/// `p` and `size` must come from one earlier `raw_alloc` call, and nothing
/// may use the memory afterwards.
pub unsafe fn raw_free(p: *mut u8, size: usize) {
    ffi::dr_raw_mem_free(p as *mut _, size);
}

/// Makes the pages covering `[addr, addr+len)` writable and returns their
/// former protection (DR_MEMPROT_* bits) so it can be put back.
///
/// # Safety
/// The range must be mapped. Making code or data writable is the caller's
/// responsibility.
pub unsafe fn make_writable(addr: usize, len: usize) -> Option<(usize, usize, u32)> {
    let page = 4096usize;
    let start = addr & !(page - 1);
    let end = (addr + len + page - 1) & !(page - 1);
    let mut prot: u32 = 0;
    if ffi::dr_query_memory(addr as *const u8, std::ptr::null_mut(), std::ptr::null_mut(), &mut prot) == 0 {
        return None;
    }
    if ffi::dr_memory_protect(start as *mut _, end - start, prot | ffi::DR_MEMPROT_WRITE) == 0 {
        return None;
    }
    Some((start, end - start, prot))
}

/// Puts back a protection saved by [`make_writable`].
///
/// # Safety
/// The range must be the one `make_writable` returned.
pub unsafe fn restore_protection(start: usize, len: usize, prot: u32) {
    ffi::dr_memory_protect(start as *mut _, len, prot);
}

/// Copies target memory at `addr` into `buf` without faulting; returns
/// how many bytes could be read (fewer than asked at an unmapped page).
pub fn safe_read(addr: usize, buf: &mut [u8]) -> usize {
    let mut done: usize = 0;
    // SAFETY: dr_safe_read catches faults on the source; `buf` is ours.
    unsafe { ffi::dr_safe_read(addr as *const _, buf.len(), buf.as_mut_ptr() as *mut _, &mut done) };
    done
}

/// Writes `data` to target memory at `addr` without faulting; returns
/// whether all of it was written.
pub fn safe_write(addr: usize, data: &[u8]) -> bool {
    let mut done: usize = 0;
    // SAFETY: dr_safe_write catches faults on the destination.
    let ok = unsafe { ffi::dr_safe_write(addr as *mut _, data.len(), data.as_ptr() as *const _, &mut done) };
    ok != 0 && done == data.len()
}
