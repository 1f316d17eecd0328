//! The address ranges memory probes watch: the scripts' `AddressSet`s,
//! which handlers change while the program runs, and the ranges their
//! predicates name as constants; and the page map, a coarse summary of
//! all of them that the code cache reads at every instrumented access
//! before it calls into the client.
//!
//! The page map has one byte per 4 KiB page of the 47-bit user address
//! space, in 1 GiB chunks allocated when a watched range first reaches
//! one (the others share one chunk of zeroes). Page P's byte is set when
//! some watched range meets `[P * 4096, (P + 1) * 4096 + 63)`: an access
//! of at most [`MAX_FILTERED_ACCESS`] bytes that overlaps a watched range
//! then starts in a marked page, so testing the page of its first byte
//! alone never misses one. A marked page only means "ask the client",
//! which decides exactly ([`overlaps`]).
//!
//! Before the page map, the inline test compares the access with the hull
//! of every watched range (lowest start to highest end, 63 bytes before
//! included as for the pages): two compares with words of one cache line,
//! where the page map is two dependent loads and five ALU instructions. Watched ranges are usually close together (a program's
//! globals, its heap blocks), so most accesses leave at the hull.

use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

pub const PAGE_SHIFT: u32 = 12;
pub const CHUNK_SHIFT: u32 = 30;
/// Bits of a user address: x86-64's 2**47 bytes, or all 32 on i386.
const ADDRESS_BITS: u32 = if cfg!(target_pointer_width = "64") { 47 } else { 32 };
/// Chunks of the user address space.
pub const CHUNKS: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);
const PAGES_PER_CHUNK: usize = 1 << (CHUNK_SHIFT - PAGE_SHIFT);
/// The longest access the page map filters; longer ones always reach the client.
pub const MAX_FILTERED_ACCESS: usize = 64;

/// One set: ranges by start, and the largest size it ever held, which
/// bounds how far before an address a range that reaches it can start.
#[derive(Default)]
struct Set {
    ranges: BTreeMap<usize, usize>,
    max_size: usize,
}

impl Set {
    /// Whether a range meets the bytes `first..=last`.
    fn overlaps(&self, first: usize, last: usize) -> bool {
        let from = first.saturating_sub(self.max_size.saturating_sub(1));
        self.ranges.range(from..=last).any(|(&start, &size)| start.saturating_add(size) > first)
    }
}

static SETS: RwLock<BTreeMap<u64, Set>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Ranges the predicates name as constants, `[start, end)`: fixed once the
/// probes are installed.
static CONSTANT_RANGES: RwLock<Vec<(usize, usize)>> = RwLock::new(Vec::new());
/// Serializes changes of the page map.
static MAP_LOCK: Mutex<()> = Mutex::new(());

/// A new, empty set.
pub fn new_set() -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    SETS.write().insert(id, Set::default());
    id
}

/// Puts `[start, start + size)` in set `id`, replacing a range that starts there.
pub fn add(id: u64, start: usize, size: usize) {
    let old = {
        let mut sets = SETS.write();
        let set = sets.entry(id).or_default();
        set.max_size = set.max_size.max(size);
        set.ranges.insert(start, size)
    };
    mark(start, start.saturating_add(size));
    if let Some(old) = old.filter(|&old| old > size) {
        refresh(start, start.saturating_add(old));
    }
}

/// Takes the range starting at `start` out of set `id`.
pub fn discard(id: u64, start: usize) {
    let removed = SETS.write().get_mut(&id).and_then(|set| set.ranges.remove(&start));
    if let Some(size) = removed {
        refresh(start, start.saturating_add(size));
    }
}

/// Empties set `id`.
pub fn clear(id: u64) {
    let ranges = SETS.write().get_mut(&id).map(|set| {
        set.max_size = 0;
        std::mem::take(&mut set.ranges)
    });
    for (start, size) in ranges.into_iter().flatten() {
        refresh(start, start.saturating_add(size));
    }
}

/// Whether some byte of `first..=last` is in set `id`.
pub fn overlaps(id: u64, first: usize, last: usize) -> bool {
    SETS.read().get(&id).is_some_and(|set| set.overlaps(first, last))
}

/// The ranges of set `id`, `(start, size)` in order of their starts.
pub fn ranges(id: u64) -> Vec<(usize, usize)> {
    SETS.read().get(&id).map(|set| set.ranges.iter().map(|(&start, &size)| (start, size)).collect()).unwrap_or_default()
}

/// Adds ranges a predicate names as constants, `[start, end)`.
pub fn watch_constant_ranges(ranges: &[(usize, usize)]) {
    CONSTANT_RANGES.write().extend_from_slice(ranges);
    for &(start, end) in ranges {
        mark(start, end);
    }
}

/// Whether any watched range (of any set, or constant) meets `first..=last`.
fn watched(first: usize, last: usize) -> bool {
    CONSTANT_RANGES.read().iter().any(|&(start, end)| start <= last && end > first) || SETS.read().values().any(|set| set.overlaps(first, last))
}

// ---------------------------------------------------------------------------
// The page map

/// A chunk of zeroes that every chunk with no marked page points to.
static ZERO_CHUNK: [u8; PAGES_PER_CHUNK] = [0; PAGES_PER_CHUNK];

struct PageMap {
    chunks: [AtomicPtr<u8>; CHUNKS],
    /// Chunks allocated so far, by index (they are never freed).
    owned: Mutex<BTreeMap<usize, &'static [AtomicU8]>>,
}

// Null pointers, so that the table is zeroes in .bss rather than 131,072
// relocations for the loader; [`page_map_table`] points them at ZERO_CHUNK.
static PAGE_MAP: PageMap = PageMap {
    chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
    owned: Mutex::new(BTreeMap::new()),
};

/// The table of chunk pointers the inline test indexes by `address >> 30`,
/// every one pointing to live bytes.
pub fn page_map_table() -> usize {
    let _guard = MAP_LOCK.lock();
    for chunk in &PAGE_MAP.chunks {
        let _ = chunk.compare_exchange(std::ptr::null_mut(), ZERO_CHUNK.as_ptr() as *mut u8, Ordering::AcqRel, Ordering::Acquire);
    }
    PAGE_MAP.chunks.as_ptr() as usize
}

/// The pages whose bytes depend on a range `[start, end)`.
fn pages_of(start: usize, end: usize) -> std::ops::Range<usize> {
    let first = start.saturating_sub(MAX_FILTERED_ACCESS - 1) >> PAGE_SHIFT;
    let last = (end.max(start + 1) - 1) >> PAGE_SHIFT;
    first..(last + 1).min(CHUNKS * PAGES_PER_CHUNK)
}

fn page_byte(page: usize) -> &'static AtomicU8 {
    let chunk = page / PAGES_PER_CHUNK;
    let mut owned = PAGE_MAP.owned.lock();
    let bytes = owned.entry(chunk).or_insert_with(|| {
        let bytes: &'static [AtomicU8] = Box::leak((0..PAGES_PER_CHUNK).map(|_| AtomicU8::new(0)).collect());
        PAGE_MAP.chunks[chunk].store(bytes.as_ptr() as *mut u8, Ordering::Release);
        bytes
    });
    &bytes[page % PAGES_PER_CHUNK]
}

/// Marks the pages a new range `[start, end)` reaches, and widens the hull.
fn mark(start: usize, end: usize) {
    let _guard = MAP_LOCK.lock();
    let (low, high) = hull_of(start, end);
    set_hull(hull_low().min(low), hull_high().max(high));
    for page in pages_of(start, end) {
        page_byte(page).store(1, Ordering::Release);
    }
}

/// Recomputes the pages a range `[start, end)` that went away reached,
/// and the hull.
fn refresh(start: usize, end: usize) {
    let _guard = MAP_LOCK.lock();
    for page in pages_of(start, end) {
        let first = page << PAGE_SHIFT;
        let last = first + (1 << PAGE_SHIFT) + MAX_FILTERED_ACCESS - 2;
        if !PAGE_MAP.owned.lock().contains_key(&(page / PAGES_PER_CHUNK)) {
            continue;
        }
        page_byte(page).store(watched(first, last) as u8, Ordering::Release);
    }
    let (mut low, mut high) = EMPTY_HULL;
    let mut widen = |start: usize, end: usize| {
        let (l, h) = hull_of(start, end);
        (low, high) = (low.min(l), high.max(h));
    };
    for &(start, end) in CONSTANT_RANGES.read().iter() {
        widen(start, end);
    }
    for set in SETS.read().values() {
        // A range ends at most max_size past the last start.
        if let (Some((&first, _)), Some((&last, _))) = (set.ranges.first_key_value(), set.ranges.last_key_value()) {
            widen(first, last.saturating_add(set.max_size));
        }
    }
    set_hull(low, high);
}

// ---------------------------------------------------------------------------
// The hull

/// `[low, high)` holds every address an access meeting a watched range can
/// start at. Two words, each of which the inline test compares on its
/// own (`addr >= low`, `addr < high`), so that a thread reading them while
/// another changes them can see any mix of old and new: every low end is
/// at most the higher of the two, every high end at least the lower, and
/// a range watched before and after the change stays inside.
static HULL: [AtomicUsize; 2] = [AtomicUsize::new(EMPTY_HULL.0), AtomicUsize::new(EMPTY_HULL.1)];

/// No address is in it.
const EMPTY_HULL: (usize, usize) = (usize::MAX, 0);

/// Where the inline test finds the hull's low end, its high end 8 bytes on.
pub fn hull_address() -> usize {
    HULL.as_ptr() as usize
}

fn hull_low() -> usize {
    HULL[0].load(Ordering::Acquire)
}

fn hull_high() -> usize {
    HULL[1].load(Ordering::Acquire)
}

fn set_hull(low: usize, high: usize) {
    HULL[0].store(low, Ordering::Release);
    HULL[1].store(high, Ordering::Release);
}

/// The start addresses of accesses (of at most MAX_FILTERED_ACCESS
/// bytes) that meet `[start, end)`.
fn hull_of(start: usize, end: usize) -> (usize, usize) {
    (start.saturating_sub(MAX_FILTERED_ACCESS - 1), end.max(start.saturating_add(1)))
}

/// Whether an access starting at `address` passes the hull (what the
/// inline test computes before the page map).
pub fn in_hull(address: usize) -> bool {
    address >= hull_low() && address < hull_high()
}

/// Whether the page map sends an access starting at `address` to the
/// client (what the inline test computes).
pub fn page_marked(address: usize) -> bool {
    let chunk = address >> CHUNK_SHIFT;
    if chunk >= CHUNKS {
        return true;
    }
    let page = (address >> PAGE_SHIFT) % PAGES_PER_CHUNK;
    let bytes = PAGE_MAP.chunks[chunk].load(Ordering::Acquire);
    // SAFETY: a chunk pointer is null or points to PAGES_PER_CHUNK live bytes.
    !bytes.is_null() && unsafe { *bytes.add(page) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_answer_overlaps_of_any_byte() {
        let id = new_set();
        add(id, 0x10_0000, 4);
        assert!(overlaps(id, 0x10_0000, 0x10_0000));
        assert!(overlaps(id, 0x0f_fff0, 0x10_0000));
        assert!(overlaps(id, 0x10_0003, 0x10_0010));
        assert!(!overlaps(id, 0x10_0004, 0x10_0010));
        assert!(!overlaps(id, 0x0f_fff0, 0x0f_ffff));
        add(id, 0x0f_0000, 0x2_0000);
        assert!(overlaps(id, 0x10_8000, 0x10_8000));
        discard(id, 0x0f_0000);
        assert!(!overlaps(id, 0x10_8000, 0x10_8000));
        clear(id);
        assert!(!overlaps(id, 0x10_0000, 0x10_0000));
    }

    #[test]
    fn the_page_map_marks_pages_an_access_could_start_in() {
        let id = new_set();
        let at = 0x5555_0000_1000;
        add(id, at, 8);
        assert!(page_marked(at));
        // A 64-byte access starting 63 bytes before, in the page before.
        assert!(page_marked(at - 63));
        assert!(!page_marked(at + 0x1000));
        assert!(!page_marked(at - 0x1000 - 64));
        discard(id, at);
        assert!(!page_marked(at));
        assert!(!page_marked(at - 63));
    }

    #[test]
    fn the_hull_holds_every_watched_range_and_shrinks_when_they_go() {
        // Sets are global: other tests' ranges lie below 0x10_0000_0000.
        let id = new_set();
        let (a, b) = (0x7700_0000_0000, 0x7700_0001_0000);
        add(id, a, 8);
        add(id, b, 16);
        assert!(in_hull(a - 63) && in_hull(a) && in_hull(b + 15));
        assert!(!in_hull(b + 16));
        discard(id, b);
        // (The hull may reach past a + 8: a set bounds its ranges by the
        // largest it ever held.)
        assert!(in_hull(a + 7) && !in_hull(b));
        clear(id);
        assert!(!in_hull(a));
    }
}
