//! Exports a tenant can verify on their own: a manifest of the chain segments that cover the
//! exported events, carrying only hashes for everyone else's events.
//!
//! See [`Manifest`] for the format and what it proves.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::chain::{hash_prefix, split_chained};
use super::checkpoint::{CHECKPOINT_EVENT, CheckpointClaim};
use super::keys::Keyring;
use super::verify::{Problem, ProblemKind, Report, StreamReport};
use crate::AuditEvent;
use crate::store::{ChainPosition, Store, StoreError};

/// The manifest of an export: the chain segments that cover its events.
///
/// # Format (JSON)
/// ```text
/// { "version": 1,
///   "streams": [ { "stream": "vector-api-1a2b3c4d",
///                  "entries": [ { "seq": 41, "prevHash": "…", "hash": "…", "exported": true },
///                               { "seq": 42, "prevHash": "…", "hash": "…" },
///                               { "seq": 43, "prevHash": "…", "hash": "…", "deleted": true } ],
///                  "dropped": [[44, 45]],
///                  "checkpoints": [ "<the checkpoint event's JSON line>" ] } ] }
/// ```
/// Per stream, `entries` runs without a gap from the first exported event to the checkpoint
/// that covers the last one (or to the newest event when none does yet), except for seqs a
/// drop report names (`dropped`). An entry marked `exported` is an event of the export; every
/// other entry is another tenant's or the system's event, known only by its hashes, or an
/// event deleted with a tombstone (`deleted`). Checkpoints are given whole: they hold no
/// tenant data and carry the signatures.
///
/// # What verifying an export with it proves
/// Each exported event hashes to its entry; the entries link (`prevHash` is the previous
/// entry's `hash`); each checkpoint's line hashes to its entry, names an entry's hash as its
/// head, and is signed by a key of the keyring; and every entry marked `exported` is in the
/// export. So the export holds the tenant's events exactly as they were written, none left
/// out, in a chain the service signed, without revealing anything of the other events but
/// their number, positions and hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version: 1.
    pub version: u32,
    /// One chain segment per stream the export has events of.
    pub streams: Vec<ManifestStream>,
}

/// One stream's covering segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStream {
    /// The stream.
    pub stream: String,
    /// Every seq of the segment, in order.
    pub entries: Vec<ManifestEntry>,
    /// Seq ranges a drop report names (never written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<(u64, u64)>,
    /// The checkpoint events of the segment, as written.
    #[serde(default)]
    pub checkpoints: Vec<String>,
}

/// One position of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    /// The seq.
    pub seq: u64,
    /// The event's `integrity.prevHash`.
    pub prev_hash: String,
    /// The event's `integrity.hash`.
    pub hash: String,
    /// The event is in the export.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exported: bool,
    /// The event was deleted; its tombstone keeps the hashes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Rows read per page while building a manifest.
const PAGE: usize = 2_000;

/// Builds the manifest for the exported events at `exported` (their stream and seq),
/// reading the store's chain around them. Reads every tenant's rows, but writes only hashes
/// of the events not exported.
pub async fn build_manifest(
    store: &dyn Store,
    exported: &[(String, u64)],
) -> Result<Manifest, StoreError> {
    let mut own: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (stream, seq) in exported {
        own.entry(stream.clone()).or_default().push(*seq);
    }
    let mut tombstones: HashMap<String, HashMap<u64, super::Tombstone>> = HashMap::new();
    for t in store.tombstones().await? {
        tombstones
            .entry(t.stream.clone())
            .or_default()
            .insert(t.seq, t);
    }
    let mut streams = Vec::new();
    for (stream, mut seqs) in own {
        seqs.sort_unstable();
        let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
        let mut ms = ManifestStream {
            stream: stream.clone(),
            ..ManifestStream::default()
        };
        // From just before the first exported event, until a checkpoint covers the last.
        let mut after = Some(ChainPosition {
            stream: stream.clone(),
            seq: first.saturating_sub(1),
            id: "\u{10FFFF}".into(),
        });
        let no_tombstones = HashMap::new();
        let stream_tombstones = tombstones.get(&stream).unwrap_or(&no_tombstones);
        let mut expected = first;
        'pages: loop {
            let rows = store.chain_rows(after.as_ref(), PAGE).await?;
            for r in &rows {
                if r.stream != stream {
                    break 'pages;
                }
                // Seqs between rows: tombstones carry their hashes; the rest is a gap a drop
                // report explains (or the verifier will say it does not).
                while expected < r.seq {
                    if let Some(t) = stream_tombstones.get(&expected) {
                        ms.entries.push(ManifestEntry {
                            seq: expected,
                            prev_hash: t.prev_hash.clone(),
                            hash: t.hash.clone(),
                            exported: false,
                            deleted: true,
                        });
                    }
                    expected += 1;
                }
                expected = r.seq + 1;
                let Some((_, hash)) = split_chained(&r.json) else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_str(&r.json).unwrap_or_default();
                ms.entries.push(ManifestEntry {
                    seq: r.seq,
                    prev_hash: v["integrity"]["prevHash"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    hash: hash.to_owned(),
                    exported: seqs.binary_search(&r.seq).is_ok(),
                    deleted: false,
                });
                if r.event_type == CHECKPOINT_EVENT {
                    ms.checkpoints.push(r.json.clone());
                    if v["details"]["seq"].as_u64().is_some_and(|c| c >= last) {
                        break 'pages;
                    }
                }
                if r.event_type == "system.audit.dropped"
                    && let (Some(a), Some(b)) = (
                        v["details"]["firstSeq"].as_u64(),
                        v["details"]["lastSeq"].as_u64(),
                    )
                {
                    ms.dropped.push((a, b));
                }
            }
            match rows.last() {
                Some(l) if rows.len() == PAGE => {
                    after = Some(ChainPosition {
                        stream: l.stream.clone(),
                        seq: l.seq,
                        id: l.id.clone(),
                    });
                }
                _ => break,
            }
        }
        // Without a covering checkpoint yet the segment runs to the newest event, and the
        // verifier reports the newest exported events as unproven.
        streams.push(ms);
    }
    Ok(Manifest {
        version: 1,
        streams,
    })
}

/// Verifies an export's events (as the export holds them) against their manifest.
///
/// The report counts exported events; `verified` are those covered by a checkpoint whose
/// signature verified. Problems: `modified` (an exported event that does not hash to its
/// entry), `inserted` (an exported event the manifest does not list as exported),
/// `deleted` (an entry marked exported that the export lacks, or a gap nothing explains),
/// `brokenLink`, `badCheckpoint`, `unknownKey`.
pub fn verify_export(
    manifest: &Manifest,
    exported: &[AuditEvent],
    keys: Option<&Keyring>,
) -> Report {
    let mut report = Report {
        signatures_checked: keys.is_some(),
        ..Report::default()
    };
    let mut problems: Vec<Problem> = Vec::new();
    let mut problem = |kind, stream: &str, seq: Option<u64>, id: Option<&str>, detail: String| {
        problems.push(Problem {
            kind,
            position: 0,
            stream: Some(stream.to_owned()),
            seq,
            last_seq: None,
            id: id.map(str::to_owned),
            detail,
        });
    };
    // The exported events by position, with the hash their bytes have.
    let mut seen: HashMap<(String, u64), (String, String)> = HashMap::new();
    for e in exported {
        let Some(i) = &e.integrity else { continue };
        let mut line = Vec::new();
        let hash = e
            .write_json(&mut line)
            .ok()
            .and_then(|()| String::from_utf8(line).ok())
            .and_then(|l| split_chained(&l).map(|(p, _)| hash_prefix(p)))
            .unwrap_or_default();
        seen.insert((i.stream.to_string(), i.seq), (hash, e.id.to_string()));
    }
    let mut stream_reports = Vec::new();
    let mut counted = 0u64;
    for ms in &manifest.streams {
        let mut sr = StreamReport {
            stream: ms.stream.clone(),
            ..StreamReport::default()
        };
        let by_seq: HashMap<u64, &ManifestEntry> = ms.entries.iter().map(|e| (e.seq, e)).collect();
        // The segment links, gaps only where a drop report says.
        for w in ms.entries.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if b.seq == a.seq + 1 && b.prev_hash != a.hash {
                problem(
                    ProblemKind::BrokenLink,
                    &ms.stream,
                    Some(b.seq),
                    None,
                    format!("entry {} does not link to entry {}", b.seq, a.seq),
                );
            }
            for s in a.seq + 1..b.seq {
                if !ms.dropped.iter().any(|&(x, y)| (x..=y).contains(&s)) {
                    problem(
                        ProblemKind::Deleted,
                        &ms.stream,
                        Some(s),
                        None,
                        format!("seq {s} is missing from the manifest and no drop report names it"),
                    );
                }
            }
        }
        // Exported events against their entries; entries marked exported against the export.
        for entry in ms.entries.iter().filter(|e| e.exported) {
            match seen.get(&(ms.stream.clone(), entry.seq)) {
                None => problem(
                    ProblemKind::Deleted,
                    &ms.stream,
                    Some(entry.seq),
                    None,
                    "the manifest lists this event as exported, but the export lacks it".into(),
                ),
                Some((hash, id)) if *hash != entry.hash => problem(
                    ProblemKind::Modified,
                    &ms.stream,
                    Some(entry.seq),
                    Some(id),
                    "the exported event does not match its hash".into(),
                ),
                Some(_) => {}
            }
        }
        for ((stream, seq), (_, id)) in &seen {
            if *stream == ms.stream && !by_seq.get(seq).is_some_and(|e| e.exported) {
                problem(
                    ProblemKind::Inserted,
                    stream,
                    Some(*seq),
                    Some(id),
                    "the export holds an event the manifest does not list as exported".into(),
                );
            }
        }
        // Checkpoints: their own hash, their head, their signature.
        let mut proven_through = None;
        for line in &ms.checkpoints {
            let parsed: Option<serde_json::Value> = serde_json::from_str(line).ok();
            let seq = parsed.as_ref().and_then(|v| v["integrity"]["seq"].as_u64());
            let own_hash = split_chained(line).map(|(p, h)| (hash_prefix(p), h.to_owned()));
            let Some((v, seq, (actual, claimed))) =
                parsed.zip(seq).zip(own_hash).map(|((v, s), h)| (v, s, h))
            else {
                problem(
                    ProblemKind::BadCheckpoint,
                    &ms.stream,
                    None,
                    None,
                    "a checkpoint that cannot be read".into(),
                );
                continue;
            };
            if actual != claimed || by_seq.get(&seq).is_none_or(|e| e.hash != claimed) {
                problem(
                    ProblemKind::BadCheckpoint,
                    &ms.stream,
                    Some(seq),
                    None,
                    "the checkpoint does not match its entry".into(),
                );
                continue;
            }
            let d = &v["details"];
            let (Some(cs), Some(cseq), Some(head), Some(time), Some(key_id), Some(sig)) = (
                d["stream"].as_str(),
                d["seq"].as_u64(),
                d["head"].as_str(),
                d["time"].as_str(),
                d["keyId"].as_str(),
                d["signatureHex"].as_str(),
            ) else {
                problem(
                    ProblemKind::BadCheckpoint,
                    &ms.stream,
                    Some(seq),
                    None,
                    "the checkpoint lacks a field".into(),
                );
                continue;
            };
            if cs != ms.stream || by_seq.get(&cseq).is_none_or(|e| e.hash != head) {
                problem(
                    ProblemKind::BadCheckpoint,
                    &ms.stream,
                    Some(seq),
                    None,
                    "the checkpoint's head is not its entry's hash".into(),
                );
                continue;
            }
            let Some(keys) = keys else { continue };
            let Some(key) = keys.get(key_id) else {
                problem(
                    ProblemKind::UnknownKey,
                    &ms.stream,
                    Some(seq),
                    None,
                    format!("signed by key {key_id}, which the keyring does not hold"),
                );
                continue;
            };
            let claim = CheckpointClaim {
                stream: cs,
                seq: cseq,
                head,
                time,
                key_id,
                last: d["final"].as_bool() == Some(true),
            };
            if key.verify_hex(&claim.message(), sig) {
                proven_through = proven_through.max(Some(cseq));
            } else {
                problem(
                    ProblemKind::BadCheckpoint,
                    &ms.stream,
                    Some(seq),
                    None,
                    format!("the signature does not verify with key {key_id}"),
                );
            }
        }
        for entry in ms.entries.iter().filter(|e| e.exported) {
            sr.events += 1;
            if proven_through.is_some_and(|p| entry.seq <= p) {
                report.verified += 1;
            } else {
                report.unverifiable += 1;
            }
            counted += 1;
        }
        sr.first_seq = ms.entries.first().map_or(0, |e| e.seq);
        sr.last_seq = ms.entries.last().map_or(0, |e| e.seq);
        sr.verified_through = proven_through;
        // An export is a closed set: nothing is expected after its segment.
        sr.closed = true;
        stream_reports.push(sr);
    }
    for ((stream, seq), (_, id)) in &seen {
        if !manifest.streams.iter().any(|m| m.stream == *stream) {
            problem(
                ProblemKind::Inserted,
                stream,
                Some(*seq),
                Some(id),
                "the export holds an event of a stream the manifest does not cover".into(),
            );
        }
    }
    problems.sort_by(|a, b| (&a.stream, a.seq).cmp(&(&b.stream, b.seq)));
    for (i, p) in problems.iter_mut().enumerate() {
        p.position = i as u64 + 1;
    }
    report.problems = problems;
    report.events = counted;
    report.streams = stream_reports;
    report
}
