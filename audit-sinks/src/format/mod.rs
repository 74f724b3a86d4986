//! Wire formats shared by sinks and exports.
//!
//! Only JSON lines for now: one canonical event JSON object per line, `\n`-terminated.

pub mod jsonl;
