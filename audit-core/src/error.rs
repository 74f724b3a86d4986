//! The crate's error type.

use std::fmt;

/// An error from building an event, parsing a value, configuring the pipeline, or (converted
/// with `?`) opening a sink's file or a store.
///
/// The kind is private so it can grow; ask with the `is_*` predicates and show the message to a
/// person: it names the value and what is wrong with it.
///
/// ```
/// use audit_core::Auditor;
/// use audit_core::store::StoreError;
///
/// fn open(dir: &std::path::Path) -> Result<Auditor, audit_core::Error> {
///     std::fs::create_dir_all(dir)?; // an io::Error, as a file sink's constructor returns
///     let store_ok: Result<(), StoreError> = Ok(());
///     store_ok?; // a StoreError, as opening a store returns
///     Auditor::builder().build()
/// }
/// # let dir = std::env::temp_dir().join("audit-error-doc");
/// # open(&dir).unwrap().shutdown_blocking(std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InvalidEventType,
    UnknownCategory,
    InvalidValue,
    Config,
    Io,
    Store,
}

impl Error {
    pub(crate) fn invalid_event_type(value: &str, reason: &str) -> Error {
        Error {
            kind: Kind::InvalidEventType,
            message: format!("invalid event type {value:?}: {reason}"),
        }
    }

    pub(crate) fn unknown_category(event_type: &str) -> Error {
        Error {
            kind: Kind::UnknownCategory,
            message: format!(
                "cannot derive a category for event type {event_type:?}: its first segment is not \
                 one of auth, data, admin, security, system; set the category explicitly"
            ),
        }
    }

    pub(crate) fn invalid_value(what: &str, value: &str) -> Error {
        Error {
            kind: Kind::InvalidValue,
            message: format!("invalid {what}: {value}"),
        }
    }

    /// A configuration error: a setting, address or name that cannot be used. Sinks (this
    /// crate family's and your own) report what they refuse at construction with it.
    pub fn config(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config,
            message: message.into(),
        }
    }

    /// The event type was empty, not dotted, or not lowercase.
    pub fn is_invalid_event_type(&self) -> bool {
        self.kind == Kind::InvalidEventType
    }

    /// No category was given and none follows from the event type.
    pub fn is_unknown_category(&self) -> bool {
        self.kind == Kind::UnknownCategory
    }

    /// A value (timestamp, category name, …) could not be parsed or is out of range.
    pub fn is_invalid_value(&self) -> bool {
        self.kind == Kind::InvalidValue
    }

    /// A pipeline or sink setting is unusable (e.g. zero capacity, duplicate sink name).
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config
    }

    /// A file or directory could not be used (converted from [`std::io::Error`]).
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// A store failed (converted from [`StoreError`](crate::store::StoreError)).
    pub fn is_store(&self) -> bool {
        self.kind == Kind::Store
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error {
            kind: Kind::Io,
            message: e.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Error {
        Error {
            kind: Kind::Store,
            message: e.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
