//! crt-seccomp-notify: safe Rust over the kernel's seccomp user-notification
//! API (`listener`), over copying syscall arguments out of the notifying
//! process (`memory`), and over the OCI runtime's `listenerPath` hand-off
//! (`handoff`).

pub mod handoff;
pub mod listener;
pub mod memory;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use listener::{NotifyListener, Recv, SeccompNotif};
