//! Names kept for the life of the process (function, module and system-call
//! names), so that every event can carry them as `&'static str` instead of
//! counting references, each count being a locked instruction.

use parking_lot::Mutex;
use std::collections::HashSet;

static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The one lasting copy of `name`. Each distinct name is kept once, so a
/// library loaded and unloaded again and again costs nothing more.
pub fn intern(name: &str) -> &'static str {
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(&kept) = names.get(name) {
        return kept;
    }
    let kept: &'static str = Box::leak(name.into());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::intern;

    #[test]
    fn a_name_is_kept_once() {
        let a = intern(&String::from("malloc"));
        let b = intern(&String::from("malloc"));
        assert_eq!(a, "malloc");
        assert!(std::ptr::eq(a, b));
        assert!(!std::ptr::eq(a, intern("free")));
    }
}
