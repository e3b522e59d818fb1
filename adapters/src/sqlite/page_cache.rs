//! SQLite's own page cache, with one end-of-transaction cost taken out.
//!
//! **Why.** At the end of every transaction SQLite asks its page cache to drop the pages
//! past the end of the file (`xTruncate(size + 1)`). The default cache (`pcache1`) keeps
//! the largest page number it has seen since its last truncation and scans only the hash
//! slots between that and the limit. But when a b-tree balance sorts its new pages, it
//! parks one of them for a moment under the number of the lock-byte page (1 GiB / page
//! size + 1: 262,145 for 4 KiB pages). From then on the cache's largest number is far past
//! the end of any file below 1 GiB, and the next truncation scans the whole hash table and
//! every page in it, although there is nothing to drop. With the writer's 32 MiB cache that
//! is about 8,000 pages per commit: 4% of the daemon's time in a profile of 16 connections
//! enqueueing into a file of 300,000 jobs, about 58 µs per commit.
//!
//! **What this does.** It wraps SQLite's default cache method for method and keeps its own
//! upper bound of the page numbers that can be in each cache ([`Bound`]). A truncation that
//! the bound proves frees nothing is not passed on; every other call is passed on unchanged.
//!
//! **Never.** Nothing here decides which pages hold what: the default cache does all of
//! that. If SQLite was already initialized when [`install`] ran, SQLite refuses the
//! configuration and its default cache stays in place, unwrapped.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi::{self, sqlite3_pcache, sqlite3_pcache_methods2, sqlite3_pcache_page};

/// SQLite's lock-byte offset (`PENDING_BYTE`, 1 GiB unless changed by a test build).
const PENDING_BYTE: u32 = 0x4000_0000;

/// What a truncation must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truncation {
    /// No page at or past the limit can be in the cache: nothing to do.
    Nothing,
    /// Pass the truncation on to the default cache.
    PassOn,
}

/// An upper bound of the page numbers in one cache.
///
/// Every page enters a cache through a fetch that returns it, or changes its number
/// through a rekey, and both raise `max_key`. The one exception is the lock-byte page's
/// number (`parked`), which a b-tree balance uses for a moment while it swaps two pages:
/// a rekey to it sets `held` instead of raising the bound, and the rekey away from it
/// clears `held`. A truncation frees nothing when `max_key` is below its limit and no page
/// is held at a parked number at or past the limit.
#[derive(Debug, Clone)]
struct Bound {
    max_key: c_uint,
    parked: c_uint,
    held: bool,
}

impl Bound {
    fn new(page_size: c_int) -> Bound {
        let size = u32::try_from(page_size).unwrap_or(0).max(1);
        Bound { max_key: 0, parked: PENDING_BYTE / size + 1, held: false }
    }

    /// A fetch returned a page with this number.
    fn fetched(&mut self, key: c_uint) {
        self.max_key = self.max_key.max(key);
    }

    /// A page's number changed from `old` to `new`.
    fn rekeyed(&mut self, old: c_uint, new: c_uint) {
        if new == self.parked {
            self.held = true;
        } else {
            if old == self.parked {
                self.held = false;
            }
            self.max_key = self.max_key.max(new);
        }
    }

    /// A truncation to `limit` (pages numbered `limit` and above go) is asked for.
    fn truncate(&mut self, limit: c_uint) -> Truncation {
        let parked_in_range = self.held && self.parked >= limit;
        if self.max_key < limit && !parked_in_range {
            return Truncation::Nothing;
        }
        self.max_key = self.max_key.min(limit.saturating_sub(1));
        if self.parked >= limit {
            self.held = false;
        }
        Truncation::PassOn
    }
}

/// SQLite's default methods, captured before ours replace them.
struct Inner(sqlite3_pcache_methods2);

// SAFETY: the struct holds function pointers and SQLite's `pArg` for them, which SQLite
// itself passes to any thread; it is written once (`OnceLock`) and only read after.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
static SKIPPED: AtomicU64 = AtomicU64::new(0);
static PASSED_ON: AtomicU64 = AtomicU64::new(0);

/// One cache: the default cache's handle and our bound of it.
struct Cache {
    inner: *mut sqlite3_pcache,
    bound: Bound,
}

fn inner() -> &'static sqlite3_pcache_methods2 {
    &INNER.get().expect("the page cache wrapper runs only once installed").0
}

/// Installs the wrapper; call before SQLite is initialized (see the module's notes).
pub(crate) fn install() {
    let mut default: sqlite3_pcache_methods2 = unsafe { std::mem::zeroed() };
    // SAFETY: called once (the caller's `Once`) before this crate opens a connection;
    // SQLite copies the methods out and in, and refuses (SQLITE_MISUSE) once initialized.
    let got =
        unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, &mut default as *mut sqlite3_pcache_methods2) };
    if got != ffi::SQLITE_OK || default.xCreate.is_none() || INNER.set(Inner(default)).is_err() {
        return;
    }
    let ours = sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    };
    // SAFETY: as above; SQLite copies `ours`.
    let set = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours as *const sqlite3_pcache_methods2) };
    INSTALLED.store(set == ffi::SQLITE_OK, Ordering::Relaxed);
}

/// Whether SQLite took the wrapper (it refuses once initialized).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Truncations the wrapper found to free nothing and did not pass on, process-wide.
pub fn truncations_skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

/// Truncations passed on to SQLite's default cache, process-wide.
pub fn truncations_passed_on() -> u64 {
    PASSED_ON.load(Ordering::Relaxed)
}

// The methods below are SQLite's callbacks. SAFETY for all of them: SQLite calls them
// only with caches made by `create` (so `p` is a live `Cache`) and pages those caches
// returned, and never on one cache from two threads at once (a cache belongs to one
// connection's pager).

unsafe extern "C" fn init(_arg: *mut c_void) -> c_int {
    let inner = inner();
    match inner.xInit {
        Some(f) => unsafe { f(inner.pArg) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn shutdown(_arg: *mut c_void) {
    let inner = inner();
    if let Some(f) = inner.xShutdown {
        unsafe { f(inner.pArg) }
    }
}

unsafe extern "C" fn create(page_size: c_int, extra: c_int, purgeable: c_int) -> *mut sqlite3_pcache {
    let Some(f) = inner().xCreate else { return std::ptr::null_mut() };
    let cache = unsafe { f(page_size, extra, purgeable) };
    if cache.is_null() {
        return std::ptr::null_mut();
    }
    Box::into_raw(Box::new(Cache { inner: cache, bound: Bound::new(page_size) })).cast()
}

/// SAFETY: `p` must come from `create` and not be destroyed yet.
unsafe fn cache<'a>(p: *mut sqlite3_pcache) -> &'a mut Cache {
    unsafe { &mut *p.cast::<Cache>() }
}

unsafe extern "C" fn cachesize(p: *mut sqlite3_pcache, pages: c_int) {
    if let Some(f) = inner().xCachesize {
        unsafe { f(cache(p).inner, pages) }
    }
}

unsafe extern "C" fn pagecount(p: *mut sqlite3_pcache) -> c_int {
    match inner().xPagecount {
        Some(f) => unsafe { f(cache(p).inner) },
        None => 0,
    }
}

unsafe extern "C" fn fetch(p: *mut sqlite3_pcache, key: c_uint, create: c_int) -> *mut sqlite3_pcache_page {
    let Some(f) = inner().xFetch else { return std::ptr::null_mut() };
    let cache = unsafe { cache(p) };
    let page = unsafe { f(cache.inner, key, create) };
    if !page.is_null() {
        cache.bound.fetched(key);
    }
    page
}

unsafe extern "C" fn unpin(p: *mut sqlite3_pcache, page: *mut sqlite3_pcache_page, discard: c_int) {
    if let Some(f) = inner().xUnpin {
        unsafe { f(cache(p).inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(p: *mut sqlite3_pcache, page: *mut sqlite3_pcache_page, old: c_uint, new: c_uint) {
    let cache = unsafe { cache(p) };
    if let Some(f) = inner().xRekey {
        unsafe { f(cache.inner, page, old, new) }
    }
    cache.bound.rekeyed(old, new);
}

unsafe extern "C" fn truncate(p: *mut sqlite3_pcache, limit: c_uint) {
    let cache = unsafe { cache(p) };
    match cache.bound.truncate(limit) {
        Truncation::Nothing => {
            SKIPPED.fetch_add(1, Ordering::Relaxed);
        }
        Truncation::PassOn => {
            PASSED_ON.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = inner().xTruncate {
                unsafe { f(cache.inner, limit) }
            }
        }
    }
}

unsafe extern "C" fn destroy(p: *mut sqlite3_pcache) {
    let cache = unsafe { Box::from_raw(p.cast::<Cache>()) };
    if let Some(f) = inner().xDestroy {
        unsafe { f(cache.inner) }
    }
}

unsafe extern "C" fn shrink(p: *mut sqlite3_pcache) {
    if let Some(f) = inner().xShrink {
        unsafe { f(cache(p).inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// What the default cache holds, as a set of page numbers, beside the bound of it.
    struct Model {
        pages: BTreeSet<c_uint>,
        bound: Bound,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fetch(c_uint),
        Discard(usize),
        /// A balance's swap of two cached pages through the parked number.
        Swap(usize, usize),
        /// A plain rekey of a cached page to a free number.
        Rekey(usize, c_uint),
        Truncate(c_uint),
    }

    impl Model {
        fn new(page_size: c_int) -> Model {
            Model { pages: BTreeSet::new(), bound: Bound::new(page_size) }
        }

        fn nth(&self, i: usize) -> Option<c_uint> {
            (!self.pages.is_empty()).then(|| *self.pages.iter().nth(i % self.pages.len()).unwrap())
        }

        fn rekey(&mut self, old: c_uint, new: c_uint) {
            assert!(self.pages.remove(&old) && self.pages.insert(new));
            self.bound.rekeyed(old, new);
        }

        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Fetch(key) => {
                    self.pages.insert(key);
                    self.bound.fetched(key);
                }
                Op::Discard(i) => {
                    if let Some(key) = self.nth(i) {
                        self.pages.remove(&key);
                    }
                }
                Op::Swap(i, j) => {
                    let (Some(a), Some(b)) = (self.nth(i), self.nth(j)) else { return };
                    let parked = self.bound.parked;
                    if a == b || a == parked || b == parked || self.pages.contains(&parked) {
                        return;
                    }
                    self.rekey(a, parked);
                    self.rekey(b, a);
                    self.rekey(parked, b);
                }
                Op::Rekey(i, new) => {
                    let Some(old) = self.nth(i) else { return };
                    if !self.pages.contains(&new) {
                        self.rekey(old, new);
                    }
                }
                Op::Truncate(limit) => {
                    let frees = self.pages.range(limit..).next().is_some();
                    let decided = self.bound.truncate(limit);
                    assert!(
                        !(frees && decided == Truncation::Nothing),
                        "truncate({limit}) skipped with pages {:?} in the cache",
                        self.pages.range(limit..).collect::<Vec<_>>()
                    );
                    if decided == Truncation::PassOn {
                        self.pages.retain(|&key| key < limit);
                    }
                }
            }
        }
    }

    fn op(parked: c_uint) -> impl Strategy<Value = Op> {
        let key = prop_oneof![1..64u32, Just(parked), parked - 2..parked + 3];
        prop_oneof![
            4 => key.clone().prop_map(Op::Fetch),
            1 => any::<usize>().prop_map(Op::Discard),
            2 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Op::Swap(i, j)),
            1 => (any::<usize>(), key.clone()).prop_map(|(i, new)| Op::Rekey(i, new)),
            2 => key.prop_map(Op::Truncate),
        ]
    }

    proptest! {
        /// The rule: a truncation is skipped only when no page at or past its limit is in
        /// the cache, whatever fetches, discards, swaps and rekeys came before.
        #[test]
        fn a_skipped_truncation_never_leaves_a_page_at_or_past_its_limit(
            ops in proptest::collection::vec(op(PENDING_BYTE / 4096 + 1), 1..80),
        ) {
            let mut model = Model::new(4096);
            for op in &ops {
                model.apply(op);
            }
        }
    }

    #[test]
    fn a_balance_swap_below_the_end_of_the_file_leaves_nothing_to_truncate() {
        let mut model = Model::new(4096);
        for key in 1..=40 {
            model.apply(&Op::Fetch(key));
        }
        model.apply(&Op::Swap(30, 5));
        assert_eq!(model.bound.truncate(41), Truncation::Nothing);
        // A page past the end (a rolled-back growth) is still dropped.
        model.apply(&Op::Fetch(45));
        assert_eq!(model.bound.truncate(41), Truncation::PassOn);
        assert_eq!(model.bound.truncate(41), Truncation::Nothing);
    }
}
