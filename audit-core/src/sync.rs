//! The one lock helper these crates share.
//!
//! Every mutex in the audit crates guards state that stays consistent if a holder panics
//! (each change is a single step: a push, a pop, an assignment), so a poisoned lock is used
//! as it is rather than spreading the panic to every later caller, which would stop the
//! audit trail because of one unrelated failure.
//!
//! ```
//! use std::sync::Mutex;
//! use audit_core::sync::LockExt;
//!
//! let m = Mutex::new(1);
//! let _ = std::panic::catch_unwind(|| {
//!     let _guard = m.lock_ignore_poison();
//!     panic!("a holder panics");
//! });
//! assert_eq!(*m.lock_ignore_poison(), 1);
//! ```

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that takes a poisoned lock as it is.
pub trait LockExt<T: ?Sized> {
    /// Locks, waiting for the lock; a lock poisoned by a panicking holder is taken anyway.
    fn lock_ignore_poison(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_ignore_poison(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
