//! The verifier: reads events as written and names the first thing that does not add up.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::chain::{GENESIS, hash_prefix, is_hex64, split_chained};
use super::checkpoint::{CHECKPOINT_EVENT, CheckpointClaim};
use super::keys::Keyring;
use crate::AuditEvent;

/// What the store keeps of a deleted event, so a verifier can tell an authorized deletion
/// from tampering: enough to carry the chain across it, and who deleted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    /// The deleted event's id.
    pub id: String,
    /// Its stream.
    pub stream: String,
    /// Its seq.
    pub seq: u64,
    /// Its `integrity.prevHash`.
    pub prev_hash: String,
    /// Its `integrity.hash`.
    pub hash: String,
    /// When it was deleted (RFC 3339).
    pub deleted_at: String,
    /// Who deleted it: the API caller's actor id, or `retention` for a retention purge.
    pub deleted_by: String,
    /// `api` (an authorized `DELETE`, which the trail records as `admin.audit_log.delete`)
    /// or `retention`.
    pub reason: String,
}

/// What kind of problem a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ProblemKind {
    /// Not an event: not JSON, or without `id`, `eventType` or `integrity`.
    Malformed,
    /// An event without `integrity.hash` (written with the chain off).
    Unchained,
    /// The event's bytes do not hash to its `integrity.hash`: it was edited.
    Modified,
    /// The event's hash is consistent but its `prevHash` is not the previous event's hash:
    /// the previous event was replaced by a rehashed one, or this one was forged.
    BrokenLink,
    /// A second, different event with a seq already seen.
    Inserted,
    /// A seq lower than one already seen: events were moved.
    Reordered,
    /// Seqs missing from the input that no drop report or tombstone explains.
    Deleted,
    /// A checkpoint whose head is not the hash of the event it names, whose signature does
    /// not verify, or that cannot be read.
    BadCheckpoint,
    /// A checkpoint signed by a key the keyring does not hold.
    UnknownKey,
    /// A tombstone that does not link into the chain.
    BadTombstone,
    /// A tombstone from the API whose deletion the trail does not record.
    UnrecordedDeletion,
    /// A store row whose columns disagree with its event text.
    ColumnMismatch,
}

impl ProblemKind {
    /// The kind's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Malformed => "malformed",
            ProblemKind::Unchained => "unchained",
            ProblemKind::Modified => "modified",
            ProblemKind::BrokenLink => "brokenLink",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Deleted => "deleted",
            ProblemKind::BadCheckpoint => "badCheckpoint",
            ProblemKind::UnknownKey => "unknownKey",
            ProblemKind::BadTombstone => "badTombstone",
            ProblemKind::UnrecordedDeletion => "unrecordedDeletion",
            ProblemKind::ColumnMismatch => "columnMismatch",
        }
    }
}

/// One thing that does not add up, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// What it is.
    pub kind: ProblemKind,
    /// The record (1-based: a line across the given files, or a store row in stream and seq
    /// order) where it was found.
    pub position: u64,
    /// The stream, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The seq (for `deleted`, the first missing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For `deleted`: the last missing seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// The event's id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A sentence saying what was found.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at record {}", self.kind.as_str(), self.position)?;
        if let Some(s) = &self.stream {
            write!(f, ", stream {s}")?;
        }
        match (self.seq, self.last_seq) {
            (Some(a), Some(b)) if a != b => write!(f, ", seq {a}-{b}")?,
            (Some(a), _) => write!(f, ", seq {a}")?,
            _ => {}
        }
        if let Some(id) = &self.id {
            write!(f, ", id {id}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What was found about one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    /// The stream.
    pub stream: String,
    /// Events of the stream in the input.
    pub events: u64,
    /// The lowest and highest seq seen.
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// Events of the stream no verified checkpoint covers.
    pub unverifiable: u64,
    /// The highest seq covered by a checkpoint whose signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_through: Option<u64>,
    /// True when the stream ends with a verified final checkpoint (a clean shutdown); false
    /// for a stream still being written, cut short, or ended by a crash.
    pub closed: bool,
}

/// The verifier's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Records read.
    pub events: u64,
    /// Events covered by a checkpoint whose signature verified (checkpoints included).
    pub verified: u64,
    /// Events whose chain holds but that no verified checkpoint covers: written after the last
    /// checkpoint (a running stream, a cut-off tail, a crash), or read without keys.
    pub unverifiable: u64,
    /// Missing seqs that drop reports explain.
    pub dropped: u64,
    /// Missing seqs that tombstones explain.
    pub tombstoned: u64,
    /// Records that repeat an event already seen (same seq, same hash): a sink that wrote a
    /// batch again after a failure it could not tell from a loss.
    pub duplicates: u64,
    /// True when checkpoint signatures were checked (a keyring was given).
    pub signatures_checked: bool,
    /// Per stream, in name order.
    pub streams: Vec<StreamReport>,
    /// Everything that does not add up, in input order; empty when the trail is intact.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// Like [`is_fully_verified`](Self::is_fully_verified), except that `live` (the stream
    /// still being written) may lack its final checkpoint and have events after its last
    /// one, as long as at least one checkpoint of it verified.
    pub fn is_verified_except_live(&self, live: &str) -> bool {
        self.is_intact()
            && self.signatures_checked
            && self.streams.iter().all(|s| {
                if s.stream == live {
                    s.verified_through.is_some()
                } else {
                    s.closed && s.unverifiable == 0
                }
            })
    }

    /// True when no problem was found, every event is covered by a verified checkpoint and
    /// every stream ends with its final checkpoint: nothing can have been cut off the end.
    /// A stream still being written is not closed, so a live trail is at best intact.
    pub fn is_fully_verified(&self) -> bool {
        self.is_intact()
            && self.unverifiable == 0
            && self.signatures_checked
            && self.streams.iter().all(|s| s.closed)
    }
}

/// One event as the verifier reads it.
#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    integrity: Option<RecordIntegrity>,
    #[serde(default)]
    target: Option<RecordTarget>,
    #[serde(default)]
    context: Option<RecordContext>,
    #[serde(default)]
    result: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordIntegrity {
    stream: String,
    seq: u64,
    #[serde(default)]
    prev_hash: Option<String>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
struct RecordTarget {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordContext {
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Deserialize)]
struct WithDetails {
    #[serde(default)]
    details: serde_json::Map<String, serde_json::Value>,
}

/// A store row's indexed columns, to compare with its event text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredColumns<'a> {
    /// The `id` column.
    pub id: &'a str,
    /// The `stream` column.
    pub stream: &'a str,
    /// The `seq` column.
    pub seq: u64,
    /// The `event_type` column.
    pub event_type: &'a str,
    /// The tenant column.
    pub tenant: Option<&'a str>,
    /// The time column, milliseconds since the Unix epoch.
    pub unix_millis: i64,
}

#[derive(Debug, Default)]
struct StreamState {
    report: StreamReport,
    /// The last seq and hash in chain order.
    last: Option<(u64, String)>,
    /// Seqs and hashes since the last verified checkpoint's head; `true` once counted as
    /// verified (or not an event: a tombstone).
    recent: VecDeque<(u64, String, bool)>,
    /// Ranges `system.audit.dropped` reports name.
    drops: Vec<(u64, u64)>,
    /// Missing ranges awaiting a drop report: (first, last, position).
    missing: Vec<(u64, u64, u64)>,
    /// Hashes by seq, to tell a repeated event from an inserted one.
    seen: HashMap<u64, String>,
}

/// Reads events in order and reports what does not add up. Feed it every source of one
/// trail (all rotated files, oldest first, or a store's rows in stream and seq order), then
/// the store's tombstones if any, and call [`finish`](Self::finish).
///
/// ```
/// use audit_core::integrity::Verifier;
///
/// let mut v = Verifier::new(None);
/// v.push_line("not json");
/// let report = v.finish();
/// assert_eq!(report.problems[0].kind.as_str(), "malformed");
/// ```
#[derive(Debug)]
pub struct Verifier {
    keys: Option<Keyring>,
    position: u64,
    streams: BTreeMap<String, StreamState>,
    tombstones: HashMap<(String, u64), Tombstone>,
    used_tombstones: Vec<(Tombstone, u64)>,
    /// Target ids of successful `admin.audit_log.delete` events.
    recorded_deletions: HashSet<String>,
    report: Report,
}

impl Verifier {
    /// A verifier that checks checkpoint signatures against `keys`; without keys it checks
    /// the chain only and reports every event as unverifiable.
    pub fn new(keys: Option<Keyring>) -> Verifier {
        Verifier {
            report: Report {
                signatures_checked: keys.is_some(),
                ..Report::default()
            },
            keys,
            position: 0,
            streams: BTreeMap::new(),
            tombstones: HashMap::new(),
            used_tombstones: Vec::new(),
            recorded_deletions: HashSet::new(),
        }
    }

    /// Adds tombstones; give them before the events they stand in for.
    pub fn add_tombstones(&mut self, tombstones: impl IntoIterator<Item = Tombstone>) {
        for t in tombstones {
            self.tombstones.insert((t.stream.clone(), t.seq), t);
        }
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        stream: Option<&str>,
        seq: Option<u64>,
        id: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.report.problems.push(Problem {
            kind,
            position: self.position,
            stream: stream.map(str::to_owned),
            seq,
            last_seq: None,
            id: id.map(str::to_owned),
            detail: detail.into(),
        });
    }

    /// Reads a store row: its columns must agree with its event text, which is then read as
    /// [`push_line`](Self::push_line) would.
    pub fn push_stored(&mut self, columns: &StoredColumns<'_>, text: &str) {
        self.position += 1;
        let parsed: Option<Record> = serde_json::from_str(text).ok();
        if let Some(r) = &parsed {
            let mut differs = Vec::new();
            if r.id != columns.id {
                differs.push("id");
            }
            if r.event_type != columns.event_type {
                differs.push("event_type");
            }
            match &r.integrity {
                Some(i) if i.stream == columns.stream && i.seq == columns.seq => {}
                _ => differs.push("stream/seq"),
            }
            let tenant = r
                .context
                .as_ref()
                .and_then(|c| c.organization_id.as_deref());
            if tenant != columns.tenant {
                differs.push("tenant");
            }
            let millis = r
                .timestamp
                .as_deref()
                .and_then(|t| t.parse::<crate::Timestamp>().ok())
                .map(crate::Timestamp::unix_millis);
            if millis != Some(columns.unix_millis) {
                differs.push("ts");
            }
            if !differs.is_empty() {
                let detail = format!(
                    "the row's {} column(s) disagree with its event (event id {}, seq {})",
                    differs.join(", "),
                    r.id,
                    r.integrity.as_ref().map_or(0, |i| i.seq)
                );
                self.problem(
                    ProblemKind::ColumnMismatch,
                    Some(columns.stream),
                    Some(columns.seq),
                    Some(columns.id),
                    detail,
                );
            }
        }
        self.read(text);
    }

    /// Verifies a whole JSON-lines trail at once (one file's text, or files concatenated in
    /// the order they were written): every line read, then [`finish`](Self::finish).
    ///
    /// ```
    /// use audit_core::integrity::Verifier;
    ///
    /// let report = Verifier::verify_lines("not json\n".lines(), None);
    /// assert!(!report.is_intact());
    /// ```
    pub fn verify_lines<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        keys: Option<Keyring>,
    ) -> Report {
        let mut v = Verifier::new(keys);
        for line in lines {
            v.push_line(line);
        }
        v.finish()
    }

    /// Verifies events held in memory (what a sink received, say) as a file of them would
    /// read: each is written as its canonical line, then [`verify_lines`](Self::verify_lines).
    pub fn verify_events<'a>(
        events: impl IntoIterator<Item = &'a AuditEvent>,
        keys: Option<Keyring>,
    ) -> Report {
        let mut v = Verifier::new(keys);
        let mut line = Vec::new();
        for e in events {
            line.clear();
            // Writing into a Vec cannot fail.
            let _ = e.write_json(&mut line);
            v.push_line(&String::from_utf8_lossy(&line));
        }
        v.finish()
    }

    /// Reads one event as written: a JSON line (a trailing newline is ignored) or a store's
    /// event text.
    pub fn push_line(&mut self, line: &str) {
        self.position += 1;
        self.read(line);
    }

    fn read(&mut self, line: &str) {
        self.report.events += 1;
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                self.problem(
                    ProblemKind::Malformed,
                    None,
                    None,
                    None,
                    format!("not an audit event: {e}"),
                );
                return;
            }
        };
        let Some(integrity) = &record.integrity else {
            self.problem(
                ProblemKind::Malformed,
                None,
                None,
                Some(&record.id),
                "the event has no integrity member",
            );
            return;
        };
        let (stream, seq) = (integrity.stream.clone(), integrity.seq);
        let (Some(prev), Some(claimed)) = (&integrity.prev_hash, &integrity.hash) else {
            self.problem(
                ProblemKind::Unchained,
                Some(&stream),
                Some(seq),
                Some(&record.id),
                "the event carries no hash chain",
            );
            return;
        };
        let (prev, claimed) = (prev.clone(), claimed.clone());
        // The hash the bytes really have; a line whose tail is not the hash member cannot
        // have been written by the chain.
        let actual = match split_chained(line) {
            Some((covered, hash)) if hash == claimed => hash_prefix(covered),
            _ => String::new(),
        };
        if actual != claimed || !is_hex64(&prev) {
            self.problem(
                ProblemKind::Modified,
                Some(&stream),
                Some(seq),
                Some(&record.id),
                "the event's bytes do not match its hash: it was changed after it was written",
            );
            // Its claimed hash still links the chain, so what follows is judged on its own.
        }
        self.link(&record, &stream, seq, &prev, &claimed, line);
    }

    fn link(
        &mut self,
        record: &Record,
        stream: &str,
        seq: u64,
        prev: &str,
        hash: &str,
        line: &str,
    ) {
        let position = self.position;
        let st = self.streams.entry(stream.to_owned()).or_default();
        if st.report.events == 0 {
            st.report.stream = stream.to_owned();
            st.report.first_seq = seq;
        }
        st.report.events += 1;
        st.report.last_seq = st.report.last_seq.max(seq);
        let last = st.last.clone();
        if let Some((last_seq, _)) = &last
            && seq <= *last_seq
        {
            // Already past this seq: the same event again, a second event with its number,
            // or an event moved backwards.
            let dup = st.seen.get(&seq).cloned();
            // An event that a gap was waiting for is present after all, only out of place.
            let was_missing = take_from_missing(&mut st.missing, seq);
            match dup {
                Some(h) if h == hash => {
                    self.report.duplicates += 1;
                    st.report.events -= 1;
                }
                Some(_) => self.problem(
                    ProblemKind::Inserted,
                    Some(stream),
                    Some(seq),
                    Some(&record.id),
                    format!("a second event with seq {seq}: it was inserted"),
                ),
                None => {
                    let detail = if was_missing {
                        format!("seq {seq} comes after seq {last_seq}: events were reordered")
                    } else {
                        format!("seq {seq} comes after seq {last_seq}")
                    };
                    self.problem(
                        ProblemKind::Reordered,
                        Some(stream),
                        Some(seq),
                        Some(&record.id),
                        detail,
                    );
                }
            }
            return;
        }
        st.seen.insert(seq, hash.to_owned());
        // Walk the seqs between the last event and this one: tombstones carry the chain,
        // anything else is missing until a drop report explains it.
        let (from, mut cursor) = match &last {
            Some((s, h)) => (s + 1, Some(h.clone())),
            None => (1, Some(GENESIS.to_owned())),
        };
        let mut run: Option<(u64, u64)> = None;
        let mut problems = Vec::new();
        for s in from..seq {
            if let Some(t) = self.tombstones.get(&(stream.to_owned(), s)) {
                if cursor.as_deref().is_some_and(|c| c != t.prev_hash) {
                    problems.push((
                        ProblemKind::BadTombstone,
                        s,
                        t.id.clone(),
                        "the tombstone's prevHash is not the previous event's hash".to_owned(),
                    ));
                }
                cursor = Some(t.hash.clone());
                st.recent.push_back((s, t.hash.clone(), true));
                self.used_tombstones.push((t.clone(), position));
                self.report.tombstoned += 1;
                if let Some((a, b)) = run.take() {
                    st.missing.push((a, b, position));
                }
            } else {
                cursor = None;
                run = Some(run.map_or((s, s), |(a, _)| (a, s)));
            }
        }
        if let Some((a, b)) = run {
            st.missing.push((a, b, position));
        }
        if let Some(c) = &cursor
            && c != prev
        {
            let detail = match &last {
                Some((l, _)) => format!(
                    "its prevHash is not the hash of seq {l}: that event was replaced or this one forged"
                ),
                None => {
                    "the first event of the stream does not start from the genesis hash".to_owned()
                }
            };
            problems.push((ProblemKind::BrokenLink, seq, record.id.clone(), detail));
        }
        st.last = Some((seq, hash.to_owned()));
        st.recent.push_back((seq, hash.to_owned(), false));
        for (kind, s, id, detail) in problems {
            self.problem(kind, Some(stream), Some(s), Some(&id), detail);
        }
        self.special(record, stream, seq, line);
    }

    /// Drop reports, checkpoints and recorded deletions.
    fn special(&mut self, record: &Record, stream: &str, seq: u64, line: &str) {
        let t = record.event_type.as_str();
        if t == "admin.audit_log.delete" {
            if record.result.as_deref() == Some("success")
                && let Some(id) = record.target.as_ref().and_then(|t| t.id.clone())
            {
                self.recorded_deletions.insert(id);
            }
            return;
        }
        if t != "system.audit.dropped" && t != CHECKPOINT_EVENT {
            return;
        }
        let details = serde_json::from_str::<WithDetails>(line)
            .map(|d| d.details)
            .unwrap_or_default();
        let num = |k: &str| details.get(k).and_then(serde_json::Value::as_u64);
        let text = |k: &str| details.get(k).and_then(serde_json::Value::as_str);
        if t == "system.audit.dropped" {
            if let (Some(a), Some(b)) = (num("firstSeq"), num("lastSeq"))
                && let Some(st) = self.streams.get_mut(stream)
            {
                st.drops.push((a.min(b), a.max(b)));
            }
            return;
        }
        let (Some(cp_stream), Some(cp_seq), Some(head), Some(time), Some(key_id), Some(sig)) = (
            text("stream"),
            num("seq"),
            text("head"),
            text("time"),
            text("keyId"),
            text("signatureHex"),
        ) else {
            self.problem(
                ProblemKind::BadCheckpoint,
                Some(stream),
                Some(seq),
                Some(&record.id),
                "the checkpoint lacks one of stream, seq, head, time, keyId, signatureHex",
            );
            return;
        };
        let last = details.get("final").and_then(serde_json::Value::as_bool) == Some(true);
        let claim = CheckpointClaim {
            stream: cp_stream,
            seq: cp_seq,
            head,
            time,
            key_id,
            last,
        };
        let fail = |v: &mut Verifier, kind, detail: String| {
            v.problem(kind, Some(stream), Some(seq), Some(&record.id), detail);
        };
        if cp_stream != stream || cp_seq >= seq {
            return fail(
                self,
                ProblemKind::BadCheckpoint,
                format!(
                    "the checkpoint names stream {cp_stream} seq {cp_seq}, not an earlier event of its own stream"
                ),
            );
        }
        let Some(st) = self.streams.get_mut(stream) else {
            return;
        };
        let found = st.recent.iter().find(|(s, _, _)| *s == cp_seq);
        match found {
            Some((_, h, _)) if h == head => {}
            Some(_) => {
                return fail(
                    self,
                    ProblemKind::BadCheckpoint,
                    format!(
                        "the chain head at seq {cp_seq} is not the one the checkpoint signed: events up to it were rewritten"
                    ),
                );
            }
            None => {
                return fail(
                    self,
                    ProblemKind::BadCheckpoint,
                    format!("the checkpoint covers seq {cp_seq}, which is not in the input"),
                );
            }
        }
        let Some(keys) = &self.keys else {
            return;
        };
        let Some(key) = keys.get(key_id) else {
            return fail(
                self,
                ProblemKind::UnknownKey,
                format!("signed by key {key_id}, which the keyring does not hold"),
            );
        };
        if !key.verify_hex(&claim.message(), sig) {
            return fail(
                self,
                ProblemKind::BadCheckpoint,
                format!("the signature does not verify with key {key_id}"),
            );
        }
        // Everything up to the head, and the checkpoint itself, is now proven.
        let mut verified = 0;
        for (s, _, counted) in st.recent.iter_mut() {
            if (*s <= cp_seq || *s == seq) && !*counted {
                *counted = true;
                verified += 1;
            }
        }
        while st.recent.front().is_some_and(|(s, _, _)| *s < cp_seq) {
            st.recent.pop_front();
        }
        st.report.verified_through = Some(cp_seq);
        st.report.closed = last;
        self.report.verified += verified;
    }

    /// Settles what could only be judged at the end (gaps, deletions) and returns the report.
    pub fn finish(mut self) -> Report {
        let mut late = Vec::new();
        for (name, st) in &mut self.streams {
            // A stream that goes on after its final checkpoint is not closed.
            if st.report.closed && st.report.verified_through.is_some() {
                let last_counted = st.recent.back().is_none_or(|(_, _, c)| *c);
                st.report.closed = last_counted;
            }
            let mut drops = std::mem::take(&mut st.drops);
            drops.sort_unstable();
            for &(a, b, position) in &st.missing {
                let (covered, uncovered) = cover(a, b, &drops);
                self.report.dropped += covered;
                for (x, y) in uncovered {
                    late.push(Problem {
                        kind: ProblemKind::Deleted,
                        position,
                        stream: Some(name.clone()),
                        seq: Some(x),
                        last_seq: Some(y),
                        id: None,
                        detail: if x == y {
                            format!("seq {x} is missing and no drop report or tombstone explains it")
                        } else {
                            format!("seqs {x}-{y} are missing and no drop report or tombstone explains them")
                        },
                    });
                }
            }
            st.report.unverifiable = st.recent.iter().filter(|(_, _, c)| !c).count() as u64;
            self.report.unverifiable += st.report.unverifiable;
            self.report.streams.push(st.report.clone());
        }
        for (t, position) in &self.used_tombstones {
            if t.reason == "api" && !self.recorded_deletions.contains(&t.id) {
                late.push(Problem {
                    kind: ProblemKind::UnrecordedDeletion,
                    position: *position,
                    stream: Some(t.stream.clone()),
                    seq: Some(t.seq),
                    last_seq: None,
                    id: Some(t.id.clone()),
                    detail: format!(
                        "a tombstone says {} deleted this event, but no admin.audit_log.delete event records it",
                        t.deleted_by
                    ),
                });
            }
        }
        self.report.problems.extend(late);
        self.report.problems.sort_by_key(|p| p.position);
        self.report
    }
}

/// Removes `seq` from the missing ranges; true when it was there.
fn take_from_missing(missing: &mut Vec<(u64, u64, u64)>, seq: u64) -> bool {
    let Some(i) = missing.iter().position(|&(a, b, _)| (a..=b).contains(&seq)) else {
        return false;
    };
    let (a, b, p) = missing.remove(i);
    if a < seq {
        missing.push((a, seq - 1, p));
    }
    if seq < b {
        missing.push((seq + 1, b, p));
    }
    true
}

/// How many of `a..=b` the sorted `ranges` cover, and the uncovered sub-ranges.
fn cover(a: u64, b: u64, ranges: &[(u64, u64)]) -> (u64, Vec<(u64, u64)>) {
    let mut covered = 0;
    let mut gaps = Vec::new();
    let mut next = a;
    for &(x, y) in ranges {
        if y < next || x > b {
            continue;
        }
        if x > next {
            gaps.push((next, x - 1));
        }
        let end = y.min(b);
        covered += end - x.max(next) + 1;
        next = end + 1;
        if next > b {
            break;
        }
    }
    if next <= b {
        gaps.push((next, b));
    }
    (covered, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_splits_a_range_into_covered_and_missing_parts() {
        assert_eq!(cover(5, 9, &[]), (0, vec![(5, 9)]));
        assert_eq!(cover(5, 9, &[(1, 20)]), (5, vec![]));
        assert_eq!(cover(5, 9, &[(6, 7)]), (2, vec![(5, 5), (8, 9)]));
        assert_eq!(cover(5, 9, &[(1, 5), (9, 9)]), (2, vec![(6, 8)]));
    }
}
