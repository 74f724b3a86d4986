//! Wire formats shared by sinks and exports.
//!
//! - [`jsonl`]: the canonical event JSON, one object per line.
//! - [`ocsf`]: OCSF 1.8.0 (Authentication, Account Change, User Access Management, Web
//!   Resources Activity, API Activity).
//! - [`ecs`]: Elastic Common Schema 9.x documents.
//! - [`cef`]: ArcSight CEF 0 lines.
//!
//! CSV, JSON arrays and NDJSON for exports are in `audit_core::export`.

pub mod cef;
pub mod ecs;
pub mod jsonl;
pub mod ocsf;
