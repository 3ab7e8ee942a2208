//! How a heap table's key groups are guarded: owned by one thread (no lock or atomic per
//! access) or shared between threads (a lock per access).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use cornerstone_backend_api::{Error, Result};
use parking_lot::ReentrantMutex;

/// Which threads may use a heap backend and its states.
///
/// Flink runs each subtask on one thread, and so does a heap backend by default: its states
/// are plain hash maps with no lock or atomic per access, and a use from another thread is
/// an error (never a data race). Engines that use one backend from several threads (a
/// multi-threaded async runtime that moves a task between workers, or several threads
/// writing one subtask's state) choose [`Shared`](Self::Shared): a lock per access, about
/// twice the cost of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeapThreading {
    /// The states are used on the thread that created the backend (the task thread),
    /// snapshots' synchronous phase included; their asynchronous phase runs anywhere.
    #[default]
    Owner,
    /// Any thread may use the states, under a lock per access.
    Shared,
}

/// A process-unique number of the current thread (not reused when a thread exits, unlike
/// the address of a thread-local).
#[inline]
fn current_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        // Const-initialized: a plain thread-local read, numbered on the first call.
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.with(|id| match id.get() {
        0 => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            id.set(n);
            n
        }
        n => n,
    })
}

/// A value used on one thread, checked on every access: it is `Sync` because no other
/// thread can reach the inside (the check comes first), and re-entrant use from inside an
/// access is refused by the `RefCell`'s (non-atomic) borrow flag.
struct OwnedBy<T> {
    owner: u64,
    cell: RefCell<T>,
}

// SAFETY: the `RefCell` is only borrowed on the thread whose number is `owner` (`Guarded::
// with` checks it first), so it is never touched by two threads; other threads can only
// move or drop it, which needs exclusive access. `T: Send` because the value may be dropped
// on another thread.
#[allow(
    unsafe_code,
    reason = "the one unsafe item of the workspace; see SAFETY"
)]
unsafe impl<T: Send> Sync for OwnedBy<T> {}

/// A table's mutable core under its [`HeapThreading`].
pub(crate) struct Guarded<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Owned(OwnedBy<T>),
    /// Re-entrant so that a use from inside an access is refused (by the `RefCell`), not a
    /// deadlock.
    Shared(ReentrantMutex<RefCell<T>>),
}

/// The threads a backend's tables are bound to: [`HeapThreading`] resolved when the backend
/// is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// The thread of this number.
    Thread(u64),
    /// Any thread.
    Shared,
}

impl Binding {
    /// `threading` for a backend created on the current thread.
    pub(crate) fn here(threading: HeapThreading) -> Self {
        match threading {
            HeapThreading::Owner => Binding::Thread(current_thread()),
            HeapThreading::Shared => Binding::Shared,
        }
    }
}

impl<T> Guarded<T> {
    /// `value` under `binding`.
    pub(crate) fn new(binding: Binding, value: T) -> Self {
        let inner = match binding {
            Binding::Thread(owner) => Inner::Owned(OwnedBy {
                owner,
                cell: RefCell::new(value),
            }),
            Binding::Shared => Inner::Shared(ReentrantMutex::new(RefCell::new(value))),
        };
        Guarded { inner }
    }

    /// Runs `f` with exclusive access.
    ///
    /// # Errors
    /// [`cornerstone_backend_api::ErrorKind::InvalidInput`] when an owned value is used
    /// from another thread than its owner, or any value again from inside `f`.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        match &self.inner {
            Inner::Owned(owned) => {
                if owned.owner != current_thread() {
                    return Err(wrong_thread());
                }
                let mut value = owned.cell.try_borrow_mut().map_err(|_| reentered())?;
                Ok(f(&mut value))
            }
            Inner::Shared(mutex) => {
                let guard = mutex.lock();
                let mut value = guard.try_borrow_mut().map_err(|_| reentered())?;
                Ok(f(&mut value))
            }
        }
    }

    /// Exclusive access without a check: `&mut self` proves that nobody else holds it.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        match &mut self.inner {
            Inner::Owned(owned) => owned.cell.get_mut(),
            Inner::Shared(mutex) => mutex.get_mut().get_mut(),
        }
    }
}

#[cold]
fn wrong_thread() -> Error {
    Error::invalid_input(
        "heap state used from a thread other than the one that created its backend \
         (HeapThreading::Owner); build the backend with HeapThreading::Shared to use it \
         from several threads",
    )
}

#[cold]
fn reentered() -> Error {
    Error::invalid_input("a heap state was used again from inside one of its own calls")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cornerstone_backend_api::ErrorKind;

    #[test]
    fn an_owned_value_refuses_other_threads_and_reentry() {
        let g = Guarded::new(Binding::here(HeapThreading::Owner), 1u32);
        assert_eq!(g.with(|v| *v).unwrap(), 1);
        std::thread::scope(|s| {
            let e = s.spawn(|| g.with(|v| *v)).join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("other than the one"), "{e}");
        });
        let e = g.with(|_| g.with(|v| *v)).unwrap().unwrap_err();
        assert!(e.to_string().contains("from inside"), "{e}");
        assert_eq!(
            g.with(|v| *v).unwrap(),
            1,
            "usable after a refused re-entry"
        );
    }

    #[test]
    fn a_shared_value_is_used_from_any_thread_and_refuses_reentry() {
        let g = Guarded::new(Binding::here(HeapThreading::Shared), 0u32);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        g.with(|v| *v += 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(g.with(|v| *v).unwrap(), 4000);
        let e = g.with(|_| g.with(|v| *v)).unwrap().unwrap_err();
        assert!(e.to_string().contains("from inside"), "{e}");
    }

    #[test]
    fn thread_numbers_are_distinct() {
        let here = current_thread();
        let there = std::thread::spawn(current_thread).join().unwrap();
        assert_ne!(here, there);
        assert_eq!(here, current_thread());
    }
}
