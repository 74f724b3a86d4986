//! The state file of a run without a spool ([`AuditorBuilder::state_file`]): `running` from
//! start to a clean shutdown, then `clean`; a start that finds `running` reports the previous
//! run as unclean.
//!
//! [`AuditorBuilder::state_file`]: super::AuditorBuilder::state_file

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    stream: String,
    state: String,
}

fn write(path: &Path, state: &RunState) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(serde_json::to_string(state).unwrap_or_default().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Marks `stream` as running; returns the previous run's stream when it did not end cleanly.
pub(crate) fn begin(path: &Path, stream: &str) -> Result<Option<String>, Error> {
    let previous = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<RunState>(&bytes) {
            Ok(s) if s.state == "clean" => None,
            Ok(s) => Some(s.stream),
            // Unreadable: it was cut mid-write, which only a crash does.
            Err(_) => Some("unknown".to_owned()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read the state file {}: {e}",
                path.display()
            )));
        }
    };
    let running = RunState {
        stream: stream.to_owned(),
        state: "running".to_owned(),
    };
    write(path, &running).map_err(|e| {
        Error::config(format!(
            "cannot write the state file {}: {e}",
            path.display()
        ))
    })?;
    Ok(previous)
}

/// Marks `stream` as ended cleanly.
pub(crate) fn end(path: &Path, stream: &str) -> std::io::Result<()> {
    write(
        path,
        &RunState {
            stream: stream.to_owned(),
            state: "clean".to_owned(),
        },
    )
}
