//! What every sink's spec parser shares: the error, the query parameters, and small checks.
//! A leaf: the sinks use it, and the scheme table in [`super`] uses the sinks.

use std::fmt;

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    message: String,
}

impl SpecError {
    pub(crate) fn new(message: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// A `Debug` that shows only the type's name: a parsed spec may hold secrets.
#[allow(unused_macros)] // unused when every sink feature is off
macro_rules! opaque_debug {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { .. }"))
            }
        }
    };
}
#[allow(unused_imports)] // unused when every sink feature is off
pub(crate) use opaque_debug;

/// Decoded query parameters, in order; each sink takes the ones it knows.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

#[allow(dead_code)] // which helpers are used depends on the sink features enabled
impl Params {
    /// Splits `rest` (what follows `scheme:`) at its `?` and checks every parameter is one
    /// of `allowed`; returns the part before the query and the decoded parameters.
    pub(crate) fn split<'a>(
        name: &str,
        rest: &'a str,
        allowed: &[&str],
    ) -> Result<(&'a str, Params), SpecError> {
        let (base, q) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !allowed.contains(&k) {
                return Err(SpecError::new(format!(
                    "{name}: unknown parameter `{k}` (allowed: {})",
                    allowed.join(", ")
                )));
            }
            params.push((k.to_owned(), decode(v)?));
        }
        Ok((base, Params(params)))
    }

    /// Takes a parameter's value out.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// Takes `format=` out, checked to name a [`Format`](crate::format::Format).
    pub(crate) fn format(&mut self) -> Result<Option<String>, SpecError> {
        let f = self.take("format");
        if let Some(f) = &f {
            f.parse::<crate::format::Format>().map_err(SpecError::new)?;
        }
        Ok(f)
    }
}

fn decode(s: &str) -> Result<String, SpecError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| SpecError::new("a %-escape in a query value is malformed"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SpecError::new("a query value is not UTF-8"))
}

/// Checks that `url` is `http(s)://host…`.
#[allow(dead_code)] // used by the HTTP-based sinks only
pub(crate) fn http_url(name: &str, url: &str) -> Result<(), SpecError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "http://".len()
    {
        return Err(SpecError::new(format!(
            "{name}: expected {name}+https://host…"
        )));
    }
    Ok(())
}

/// The format a checked `format=` names (the default when none).
#[allow(dead_code)] // used by the sinks that take `format=` only
pub(crate) fn format_of(f: Option<&str>) -> crate::format::Format {
    f.and_then(|f| f.parse().ok()).unwrap_or_default()
}

impl From<audit_core::Error> for SpecError {
    fn from(e: audit_core::Error) -> SpecError {
        SpecError::new(e.to_string())
    }
}
