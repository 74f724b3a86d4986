//! Export jobs: the state of each export written to a destination, and `GET /exports/{id}`.

use audit_core::sync::LockExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use audit_core::Timestamp;
use audit_core::store::{TenantScope, check_id};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use super::routes::{failed, guard, json_response};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// Jobs kept for `GET /exports/{id}`; the oldest are forgotten first (their outcome stays
/// in the audit trail as `admin.audit_log.export`).
const KEPT: usize = 1000;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) enum JobStatus {
    Running,
    Completed,
    Failed,
}

/// One export job, as `GET /exports/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) status: JobStatus,
    pub(crate) format: &'static str,
    /// The destination the client asked for.
    pub(crate) destination: String,
    /// The object's key in its store.
    pub(crate) key: String,
    /// The object's full address (`s3://bucket/key`, `file:///dir/key`).
    pub(crate) location: String,
    pub(crate) events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    pub(crate) created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) finished_at: Option<Timestamp>,
    /// The tenants the export covers: who may see the job.
    #[serde(skip)]
    pub(crate) tenants: TenantScope,
}

/// The recent jobs.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    jobs: Mutex<VecDeque<Arc<Mutex<Job>>>>,
}

impl Jobs {
    /// Adds a job, forgetting the oldest beyond [`KEPT`].
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    pub(crate) fn add(&self, job: Job) -> Arc<Mutex<Job>> {
        let job = Arc::new(Mutex::new(job));
        let mut jobs = self.jobs.lock_ignore_poison();
        if jobs.len() >= KEPT {
            jobs.pop_front();
        }
        jobs.push_back(Arc::clone(&job));
        job
    }

    fn find(&self, id: &str) -> Option<Job> {
        let jobs = self.jobs.lock_ignore_poison();
        jobs.iter()
            .map(|j| j.lock_ignore_poison().clone())
            .find(|j| j.id == id)
    }
}

/// True when a caller seeing `caller` may see everything in `covered`.
pub(crate) fn covers(caller: &TenantScope, covered: &TenantScope) -> bool {
    match (caller, covered) {
        (TenantScope::All, _) => true,
        (TenantScope::Only(mine), TenantScope::Only(theirs)) => {
            theirs.iter().all(|t| mine.contains(t))
        }
        _ => false,
    }
}

/// `GET /exports/{id}`: a job of the caller's tenants (any other is a 404, like one that
/// does not exist).
pub(crate) async fn status(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.read", "Audit export job read");
        access.detail("endpoint", "GET /exports/{id}");
        let tenants = guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        if let Err(e) = check_id("id", &id) {
            return Err(failed(&state, &parts, access, e.into()));
        }
        access.detail("jobId", id.as_str());
        match state
            .jobs
            .find(&id)
            .filter(|j| covers(&tenants, &j.tenants))
        {
            Some(job) => {
                state.record(&parts.extensions, access);
                let body = serde_json::to_value(&job).map_err(|_| ApiError::internal())?;
                Ok(json_response(StatusCode::OK, &body))
            }
            None => {
                let err = ApiError::not_found(format!("no export job {id:?}"));
                Err(failed(&state, &parts, access, err))
            }
        }
    };
    run.await.into_response()
}
