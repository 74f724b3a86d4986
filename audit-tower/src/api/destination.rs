//! Export destinations (feature `object-store`): the operator's allow-list, and the job
//! that writes one export to S3-compatible object storage or a local directory.

use audit_core::sync::LockExt;
use std::fmt;
use std::sync::{Arc, Mutex};

use audit_core::export::{Encoder, ExportFormat};
use audit_core::store::{ExportPages, Query, TenantScope};
use audit_core::{AuditEvent, Outcome, Severity, Target, Timestamp};
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use sha2::{Digest, Sha256};

use super::jobs::{Job, JobStatus, covers};
use super::{ApiError, ApiState, Principal, actor_of};

/// Part size of multipart uploads: larger exports go up in parts of this size (S3 needs at
/// least 5 MiB per part but the last); smaller ones in one request.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Why a destination could not be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationError(String);

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DestinationError {}

struct Allowed {
    /// The allowed address, ending in `/`.
    url: String,
    store: Arc<dyn ObjectStore>,
    /// The prefix inside `store` that `url` names.
    base: Path,
    /// `url` without `base`: the store's own address, which an object's key follows.
    root: String,
    tenants: TenantScope,
}

/// Where exports may be written: the operator's allow-list
/// ([`AuditApi::export_destinations`](super::AuditApi::export_destinations)).
///
/// A request's `destination` must be one of the allowed addresses or lie under one (a
/// sub-path of plain segments: letters, digits, `.`, `_`, `-`), and the tenants the export
/// covers must all be among the tenants that address is allowed for. Anything else is
/// refused (403) before any work is done, so a client can never choose where the trail goes.
///
/// ```
/// use audit_core::store::TenantScope;
/// use audit_tower::api::Destinations;
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("file://{}/", dir.path().display());
/// let destinations = Destinations::new().allow(&url, TenantScope::tenant("acme")).unwrap();
/// # let _ = destinations;
/// ```
pub struct Destinations {
    allowed: Vec<Allowed>,
}

impl fmt::Debug for Destinations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.allowed.iter().map(|a| &a.url))
            .finish()
    }
}

impl Default for Destinations {
    /// [`Destinations::new`].
    fn default() -> Destinations {
        Destinations::new()
    }
}

impl Destinations {
    /// An empty list: every destination is refused.
    ///
    /// It also installs rustls's `ring` provider as the process's default crypto provider
    /// when none is installed, which S3 clients need to be built.
    pub fn new() -> Destinations {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Destinations::empty()
    }

    /// The empty list, without touching the process's TLS provider.
    pub(crate) fn empty() -> Destinations {
        Destinations {
            allowed: Vec::new(),
        }
    }

    /// Allows exports of `tenants`' events to `url` and below it:
    ///
    /// - `s3://bucket/prefix/`: S3 or an S3-compatible service, configured from the
    ///   environment as the AWS tools are (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT` for another service,
    ///   `AWS_ALLOW_HTTP=true` for a plain-HTTP one); path-style requests unless
    ///   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    /// - `file:///dir/`: a local directory, created if missing.
    ///
    /// Fails on another scheme or a store that cannot be configured. Nothing is contacted
    /// until an export runs.
    pub fn allow(self, url: &str, tenants: TenantScope) -> Result<Destinations, DestinationError> {
        let url = with_slash(url);
        let (store, base): (Arc<dyn ObjectStore>, Path) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(DestinationError(format!("{url}: no bucket named")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| DestinationError(format!("{url}: {e}")))?;
            (Arc::new(s3), Path::from(prefix))
        } else if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir).map_err(|e| DestinationError(format!("{url}: {e}")))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| DestinationError(format!("{url}: {e}")))?;
            (Arc::new(local), Path::default())
        } else {
            return Err(DestinationError(format!(
                "{url}: use s3://bucket/prefix/ or file:///directory/"
            )));
        };
        Ok(self.allow_store(&url, store, base, tenants))
    }

    /// Allows `url` and below, written to `base` in a store you configured yourself (any
    /// [`ObjectStore`]: another cloud, custom credentials, a test double). Build an S3 store
    /// after [`Destinations::new`], which installs the TLS provider its client needs.
    #[must_use]
    pub fn allow_store(
        mut self,
        url: &str,
        store: Arc<dyn ObjectStore>,
        base: Path,
        tenants: TenantScope,
    ) -> Destinations {
        let url = with_slash(url);
        let root = match base.as_ref() {
            "" => url.clone(),
            b => url
                .strip_suffix(&format!("{b}/"))
                .unwrap_or(&url)
                .to_owned(),
        };
        self.allowed.push(Allowed {
            url,
            store,
            base,
            root,
            tenants,
        });
        self
    }

    /// The store and the directory for `requested`, if it is allowed for `tenants`.
    fn find(
        &self,
        requested: &str,
        tenants: &TenantScope,
    ) -> Result<(Arc<dyn ObjectStore>, Path, String), ApiError> {
        let refused = || {
            ApiError::forbidden(format!(
                "exports to {requested:?} are not allowed for this caller"
            ))
        };
        if requested.len() > 1024 || requested.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "destination must be at most 1024 characters of text",
            ));
        }
        let wanted = with_slash(requested);
        let allowed = self
            .allowed
            .iter()
            .filter(|a| covers(&a.tenants, tenants))
            .find(|a| wanted.starts_with(&a.url))
            .ok_or_else(refused)?;
        let mut dir = allowed.base.clone();
        for segment in wanted[allowed.url.len()..]
            .split('/')
            .filter(|s| !s.is_empty())
        {
            let plain = segment.len() <= 128
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !plain {
                return Err(ApiError::invalid(format!(
                    "destination segment {segment:?} must be letters, digits, `.`, `_` or `-`"
                )));
            }
            dir = dir.join(segment);
        }
        Ok((Arc::clone(&allowed.store), dir, allowed.root.clone()))
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// Who asked for an export, for its completion event.
pub(crate) struct Requester {
    pub(crate) principal: Option<Principal>,
    pub(crate) tenant: Option<String>,
    pub(crate) request_id: Option<String>,
}

/// A job that is allowed and ready to run.
pub(crate) struct Planned {
    store: Arc<dyn ObjectStore>,
    path: Path,
    pub(crate) job: Job,
}

/// Checks `requested` against the allow-list and names the object.
pub(crate) fn plan(
    state: &ApiState,
    requested: &str,
    tenants: &TenantScope,
    format: ExportFormat,
) -> Result<Planned, ApiError> {
    let (store, dir, root) = state.destinations.find(requested, tenants)?;
    let id = uuid::Uuid::now_v7().to_string();
    let path = dir.join(format!("audit-export-{id}.{}", format.extension()).as_str());
    let job = Job {
        id,
        status: JobStatus::Running,
        format: format.extension(),
        destination: requested.to_owned(),
        key: path.to_string(),
        location: format!("{root}{path}"),
        events: 0,
        size: None,
        sha256: None,
        error: None,
        created_at: Timestamp::now(),
        finished_at: None,
        tenants: tenants.clone(),
    };
    Ok(Planned { store, path, job })
}

/// Writes the export, then records how it ended (`admin.audit_log.export`).
pub(crate) async fn run(
    state: Arc<ApiState>,
    planned: Planned,
    job: Arc<Mutex<Job>>,
    query: Query,
    format: ExportFormat,
    requester: Requester,
) {
    let written = write(&state, planned.store, planned.path, query, format, &job).await;
    let snapshot = {
        let mut j = job.lock_ignore_poison();
        j.finished_at = Some(Timestamp::now());
        match written {
            Ok((size, sha256)) => {
                j.status = JobStatus::Completed;
                j.size = Some(size);
                j.sha256 = Some(sha256);
            }
            Err(e) => {
                j.status = JobStatus::Failed;
                j.error = Some(e);
            }
        }
        j.clone()
    };
    let ok = snapshot.status == JobStatus::Completed;
    let mut b = AuditEvent::builder("admin.audit_log.export")
        .description(if ok {
            "Audit log export job completed"
        } else {
            "Audit log export job failed"
        })
        .result(if ok { Outcome::Success } else { Outcome::Error })
        .severity(if ok { Severity::Info } else { Severity::Error })
        .target(Target::new("audit_export", snapshot.id.clone()))
        .detail("jobId", snapshot.id.clone())
        .detail("format", snapshot.format)
        .detail("destination", snapshot.destination.clone())
        .detail("location", snapshot.location.clone())
        .detail("events", snapshot.events);
    if let Some(size) = snapshot.size {
        b = b.detail("size", size);
    }
    if let Some(sha) = &snapshot.sha256 {
        b = b.detail("sha256", sha.clone());
    }
    if let Some(e) = &snapshot.error {
        b = b.detail("error", e.clone());
    }
    if let Some(p) = &requester.principal {
        b = b.actor(actor_of(p));
    }
    if let Some(t) = requester.tenant {
        b = b.organization_id(t);
    }
    if let Some(r) = requester.request_id {
        b = b.request_id(r);
    }
    if let Ok(event) = b.build() {
        let _ = state.auditor.record(event);
    }
}

/// The object being written, with the running size and SHA-256 of what went in.
struct Upload {
    out: BufWriter,
    hash: Sha256,
    size: u64,
}

impl Upload {
    async fn put(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.hash.update(&bytes);
        self.size += bytes.len() as u64;
        self.out
            .put(Bytes::from(bytes))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Streams every page into the object; returns its size and SHA-256, or why it failed (a
/// partial multipart upload is aborted).
async fn write(
    state: &ApiState,
    store: Arc<dyn ObjectStore>,
    path: Path,
    query: Query,
    format: ExportFormat,
    job: &Mutex<Job>,
) -> Result<(u64, String), String> {
    let mut up = Upload {
        out: BufWriter::with_capacity(store, path, PART_SIZE),
        hash: Sha256::new(),
        size: 0,
    };
    let mut encoder = Encoder::new(format);
    let mut pages = ExportPages::new(state.store.clone(), query);
    let body: Result<(), String> = async {
        up.put(encoder.begin()).await?;
        loop {
            let events = match pages.next_page().await {
                Ok(Some(events)) => events,
                Ok(None) => break,
                Err(e) => {
                    state.store_failed("export job", &e);
                    return Err("the audit store failed mid-export".to_owned());
                }
            };
            let mut chunk = Vec::with_capacity(events.len() * 600);
            for e in &events {
                encoder.event(e, &mut chunk);
            }
            up.put(chunk).await?;
            job.lock_ignore_poison().events += events.len() as u64;
        }
        up.put(encoder.end()).await
    }
    .await;
    if let Err(e) = body {
        // Nothing half-written stays behind as if it were the export.
        let _ = up.out.abort().await;
        return Err(e);
    }
    std::future::poll_fn(|cx| {
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut up.out), cx)
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok((up.size, hex::encode(up.hash.finalize())))
}
