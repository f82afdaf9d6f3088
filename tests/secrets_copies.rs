//! Copies of the identities that imstls makes are wiped before their memory is given back:
//! the ones [`Identity::new`] makes while validating, and the [`imstls::Binding`] snapshot
//! handed to the application.
//!
//! How: this binary's global allocator scans every block freed (and the old block of every
//! reallocation, which it always moves) inside a scope for the marker identities.
// The global allocator below (test code, not the library): `GlobalAlloc` is an unsafe trait
// whose methods forward the caller's contract to `System` as they stand.
#![allow(unsafe_code, unsafe_op_in_unsafe_fn)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use imstls::Identity;
use imstls_testkit::registrar::RegistrarConfig;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::{CertKind, DEFAULT_IMPI, DEFAULT_IMPU};
use support::{base_config, pki, World};

static MARKERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static HITS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SCANNING: Cell<bool> = const { Cell::new(false) };
}

struct Scanner;

#[global_allocator]
static ALLOCATOR: Scanner = Scanner;

impl Scanner {
    fn scan(&self, ptr: *const u8, size: usize) {
        // Off while scanning, so the scan's own allocations are not scanned.
        if size == 0 || !SCANNING.with(|s| s.replace(false)) {
            return;
        }
        // SAFETY: the block is live (its owner is freeing it) and `size` bytes long.
        let block = unsafe { std::slice::from_raw_parts(ptr, size) };
        let markers = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
        if markers
            .iter()
            .any(|m| block.windows(m.len()).any(|w| w == m.as_slice()))
        {
            HITS.fetch_add(1, Ordering::SeqCst);
        }
        drop(markers);
        SCANNING.with(|s| s.set(true));
    }
}

// SAFETY: every call goes to `System` with the caller's layout; reallocation always moves
// (alloc, copy, free), a valid implementation of `realloc`.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.scan(ptr, layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

/// How many freed blocks held a marker while `f` ran.
fn hits_while<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = HITS.load(Ordering::SeqCst);
    SCANNING.with(|s| s.set(true));
    let result = f();
    SCANNING.with(|s| s.set(false));
    (result, HITS.load(Ordering::SeqCst) - before)
}

#[test]
fn identity_copies_are_wiped() {
    *MARKERS.lock().unwrap() = vec![DEFAULT_IMPI.as_bytes().to_vec()];
    // The scanner sees what it should: an unwiped copy is a hit.
    let (_, control) = hits_while(|| drop(format!("copy of {DEFAULT_IMPI}")));
    assert_eq!(control, 1, "the scanner works");

    // Validating an identity makes no unwiped copy of it.
    let (identity, hits) = hits_while(|| Identity::new(DEFAULT_IMPI, &[DEFAULT_IMPU]).unwrap());
    assert_eq!(hits, 0, "Identity::new left {hits} unwiped copies");
    let (_, hits) = hits_while(|| drop(identity));
    assert_eq!(hits, 0, "dropping an Identity left {hits} unwiped copies");

    // The binding snapshot wipes its IMPI and IMPUs when dropped.
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Both,
        RegistrarConfig::default(),
    );
    w.register();
    let binding = w.ue.binding().unwrap();
    assert_eq!(binding.impi, DEFAULT_IMPI);
    let (_, hits) = hits_while(|| drop(binding));
    assert_eq!(hits, 0, "dropping a Binding left {hits} unwiped copies");
}
