//! crt-tracer: everything about a traced syscall that is not the kernel
//! interface itself — the syscall tables, what to copy for each argument, the
//! binary event record, trace segments on disk, and strace-style rendering.

pub mod capture;
pub mod decode;
pub mod errno;
pub mod escape;
pub mod flags;
pub mod latency;
pub mod node_files;
pub mod record;
pub mod render;
pub mod results;
pub mod segment;
pub mod summary;
pub mod syscalls;
mod syscalls_x86_64;

pub use syscalls::{Arg, Class, SyscallInfo};
