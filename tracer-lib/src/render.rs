//! Output formats for events: strace-style lines and JSON lines.
