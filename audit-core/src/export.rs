//! Export encodings for a stream of events: JSON array, NDJSON and CSV.
//!
//! An [`Encoder`] writes a header, one chunk per event and a footer, so an export can be
//! streamed page by page without holding the whole result. Events are written as they are
//! stored, i.e. already redacted.
//!
//! CSV has one row per event with stable columns ([`CSV_COLUMNS`]) and the full event as
//! JSON in the last column. Cells are quoted when they hold a comma, quote or line break, and a
//! cell starting with `=`, `+`, `-`, `@`, tab or carriage return is prefixed with `'` so a
//! spreadsheet shows it as text instead of evaluating it as a formula.
//!
//! ```
//! use audit_core::export::{Encoder, ExportFormat};
//! use audit_core::{Actor, AuditEvent};
//!
//! let event = AuditEvent::builder("auth.login.success")
//!     .actor(Actor::user("=HYPERLINK(\"http://evil\")"))
//!     .description("Logged in, from \"home\"")
//!     .build()?;
//! let mut enc = Encoder::new(ExportFormat::Csv);
//! let mut out = enc.begin();
//! enc.event(&event, &mut out);
//! out.extend(enc.end());
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.starts_with("id,timestamp,eventType,"));
//! assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""));
//! assert!(text.contains("\"Logged in, from \"\"home\"\"\""));
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::{AuditEvent, Error};

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// One JSON array of events.
    Json,
    /// One JSON event per line.
    Ndjson,
    /// Flattened columns plus the full JSON.
    Csv,
}

impl ExportFormat {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Csv => "csv",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(ExportFormat::Json),
            "ndjson" => Ok(ExportFormat::Ndjson),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(Error::invalid_value(
                "export format",
                &format!("{other:?} (use csv, json or ndjson)"),
            )),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 22] = [
    "id",
    "timestamp",
    "eventType",
    "category",
    "severity",
    "result",
    "description",
    "actorType",
    "actorId",
    "actorEmail",
    "actorRole",
    "clientId",
    "ipAddress",
    "userAgent",
    "organizationId",
    "targetType",
    "targetId",
    "targetName",
    "requestId",
    "traceId",
    "service",
    "json",
];

/// Writes events in one [`ExportFormat`].
#[derive(Debug)]
pub struct Encoder {
    format: ExportFormat,
    count: u64,
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: ExportFormat) -> Encoder {
        Encoder { format, count: 0 }
    }

    /// Events written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The bytes before the first event.
    pub fn begin(&self) -> Vec<u8> {
        match self.format {
            ExportFormat::Json => b"[".to_vec(),
            ExportFormat::Ndjson => Vec::new(),
            ExportFormat::Csv => {
                let mut out = CSV_COLUMNS.join(",").into_bytes();
                out.extend_from_slice(b"\r\n");
                out
            }
        }
    }

    /// Appends one event to `out`.
    pub fn event(&mut self, event: &AuditEvent, out: &mut Vec<u8>) {
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
        match self.format {
            ExportFormat::Json => {
                if self.count > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(json.as_bytes());
            }
            ExportFormat::Ndjson => {
                out.extend_from_slice(json.as_bytes());
                out.push(b'\n');
            }
            ExportFormat::Csv => csv_row(event, &json, out),
        }
        self.count += 1;
    }

    /// The bytes after the last event.
    pub fn end(&self) -> Vec<u8> {
        match self.format {
            ExportFormat::Json => b"]".to_vec(),
            ExportFormat::Ndjson | ExportFormat::Csv => Vec::new(),
        }
    }
}

/// Reads the events back out of an export in any of the three formats (told apart by their
/// first bytes): a JSON array, NDJSON, or CSV, whose last column is the event's JSON.
///
/// ```
/// use audit_core::export::{Encoder, ExportFormat, read_events};
/// use audit_core::AuditEvent;
///
/// let event = AuditEvent::builder("auth.logout").description("a, \"b\"").build()?;
/// for format in [ExportFormat::Json, ExportFormat::Ndjson, ExportFormat::Csv] {
///     let mut enc = Encoder::new(format);
///     let mut out = enc.begin();
///     enc.event(&event, &mut out);
///     out.extend(enc.end());
///     let back = read_events(std::str::from_utf8(&out).unwrap())?;
///     assert_eq!(back, vec![event.clone()]);
/// }
/// # Ok::<(), audit_core::Error>(())
/// ```
pub fn read_events(text: &str) -> Result<Vec<AuditEvent>, Error> {
    let bad = |e: serde_json::Error| Error::invalid_value("export", &e.to_string());
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(bad);
    }
    if trimmed.starts_with("id,timestamp,") {
        return csv_records(trimmed)
            .into_iter()
            .skip(1)
            .filter(|r| r.len() > 1)
            .map(|r| serde_json::from_str(r.last().map_or("", String::as_str)).map_err(bad))
            .collect();
    }
    trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(bad))
        .collect()
}

/// RFC 4180 records: fields split on commas, quoted fields with `""` for a quote, records
/// ending in CRLF or LF.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

fn csv_row(e: &AuditEvent, json: &str, out: &mut Vec<u8>) {
    let actor = e.actor.as_ref();
    let target = e.target.as_ref();
    let ctx = e.context.as_ref();
    let id = e.id.to_string();
    let ts = e.timestamp.to_string();
    let a =
        |f: fn(&crate::Actor) -> Option<&crate::Text>| actor.and_then(f).map(crate::Text::as_str);
    let cells: [Option<&str>; 22] = [
        Some(&id),
        Some(&ts),
        Some(e.event_type.as_str()),
        Some(e.category.as_str()),
        Some(e.severity.as_str()),
        e.result.map(|r| r.as_str()),
        e.description.as_deref(),
        a(|a| a.kind.as_ref()),
        a(|a| a.id.as_ref()),
        a(|a| a.email.as_ref()),
        a(|a| a.role.as_ref()),
        a(|a| a.client_id.as_ref()),
        a(|a| a.ip_address.as_ref()),
        a(|a| a.user_agent.as_ref()),
        ctx.and_then(|c| c.organization_id.as_deref()),
        target.and_then(|t| t.kind.as_deref()),
        target.and_then(|t| t.id.as_deref()),
        target.and_then(|t| t.name.as_deref()),
        ctx.and_then(|c| c.request_id.as_deref()),
        ctx.and_then(|c| c.trace_id.as_deref()),
        ctx.and_then(|c| c.service.as_deref()),
        Some(json),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_cell(cell.unwrap_or(""), out);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes one CSV cell, quoted when needed, with formula injection neutralised (OWASP's CSV
/// injection guidance): a cell is prefixed with `'` when, after any characters a spreadsheet
/// skips (white space of any kind, control characters, zero-width characters, a byte-order
/// mark), it starts with a formula trigger (`=`, `+`, `-`, `@`, or their fullwidth forms), or
/// when such a trigger follows a separator a spreadsheet may split on (`,`, `;`, `|`, a tab
/// or a line break) anywhere in it. A prefixed cell is always quoted.
pub(crate) fn csv_cell(value: &str, out: &mut Vec<u8>) {
    let formula = starts_formula(value)
        || value
            .char_indices()
            .filter(|(_, c)| matches!(c, ',' | ';' | '|' | '\t' | '\n' | '\r'))
            .any(|(i, c)| starts_formula(&value[i + c.len_utf8()..]));
    let quote = formula
        || value
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r' | b';'));
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

/// True when `s` opens a formula once the characters a spreadsheet skips are passed.
fn starts_formula(s: &str) -> bool {
    let skipped = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' | '\u{202A}'..='\u{202E}')
    };
    let first = s.chars().find(|c| !skipped(*c));
    let leading_tab_or_cr = s.starts_with(['\t', '\r']);
    leading_tab_or_cr
        || matches!(
            first,
            Some('=' | '+' | '-' | '@' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}')
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str) -> String {
        let mut out = Vec::new();
        csv_cell(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cells() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("=1+2"), "\"'=1+2\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell(""), "");
    }

    /// Every hostile cell a spreadsheet could read as a formula is prefixed; every cell is
    /// kept whole (a CSV reader gets back the prefix and the original text).
    #[test]
    fn formula_injection_in_every_disguise() {
        let payload = "=1+1";
        let lead = [
            "", " ", "  ", "\n", "\u{0B}", "\u{0C}", "\u{A0}", "\u{200B}", "\u{2028}", "\u{2029}",
            "\u{FEFF}", "\u{202E}", "\t", "\r", "\u{3000}", "\u{0}",
        ];
        let triggers = [
            "=", "+", "-", "@", "\u{FF1D}", "\u{FF0B}", "\u{FF0D}", "\u{FF20}",
        ];
        let mut hostile = Vec::new();
        for l in lead {
            for t in triggers {
                hostile.push(format!("{l}{t}cmd|' /C calc'!A0"));
            }
        }
        for sep in [",", ";", "|", "\t", "\n", "\r\n", "; ", ",\u{A0}"] {
            hostile.push(format!("x{sep}{payload}"));
        }
        for h in &hostile {
            let c = cell(h);
            assert!(c.starts_with("\"'"), "{h:?} -> {c:?}");
            assert!(c.ends_with('"'), "{h:?}");
            // Undoing the quoting gives back the prefix and the value.
            let inner = c[1..c.len() - 1].replace("\"\"", "\"");
            assert_eq!(inner, format!("'{h}"));
        }
        for clean in ["alice", "x=1", "a b", "key: value", "user@acme.test", "1-2"] {
            assert!(!cell(clean).contains('\''), "{clean}");
        }
    }

    #[test]
    fn json_and_ndjson_frame_events() {
        let e = AuditEvent::builder("auth.logout").build().unwrap();
        for (format, check) in [(ExportFormat::Json, 2usize), (ExportFormat::Ndjson, 2usize)] {
            let mut enc = Encoder::new(format);
            let mut out = enc.begin();
            enc.event(&e, &mut out);
            enc.event(&e, &mut out);
            out.extend(enc.end());
            let text = String::from_utf8(out).unwrap();
            let n = match format {
                ExportFormat::Json => serde_json::from_str::<Vec<AuditEvent>>(&text)
                    .unwrap()
                    .len(),
                _ => text
                    .lines()
                    .map(|l| serde_json::from_str::<AuditEvent>(l).unwrap())
                    .collect::<Vec<_>>()
                    .len(),
            };
            assert_eq!(n, check);
        }
    }
}
