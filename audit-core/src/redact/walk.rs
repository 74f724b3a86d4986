//! Applying redaction to an event: a fast check over every string at once, then, only when
//! something was found, a walk that rewrites values and records their paths.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::Inner;
use super::decode::{MAX_DECODE_ROUNDS, decode_once, percent_decode};
use super::detectors::{aws_secret_keys, has_aws_access_key};
use super::finding::Finding;
use super::rules::{Action, MASK, SecretKind};
use crate::{AuditEvent, CapturedBody, Text};

/// JSON nesting deeper than this is replaced whole rather than walked.
pub(crate) const MAX_DEPTH: usize = 32;
/// A string that looks like JSON is parsed and walked when at most this long.
const MAX_JSON_IN_STRING: usize = 1 << 20;
const TOO_DEEP: &str = "[REDACTED: nested too deep]";

// ---------------------------------------------------------------------------------------
// Phase 1: does anything in this event need redaction?

/// Gathers every string of the event into `buf` (`\0`-separated; no detector matches across
/// `\0`) and checks every key name; true when anything is or may be secret.
pub(crate) fn needs_redaction(r: &Inner, e: &AuditEvent, buf: &mut String) -> bool {
    buf.clear();
    let mut g = Gather {
        r,
        buf,
        found: false,
        json_depth: 0,
    };
    g.push(e.event_type.as_str());
    for text in free_text(e) {
        g.push(text);
    }
    if let Some(a) = &e.actor {
        if r.mask_ips
            && a.ip_address
                .as_deref()
                .is_some_and(|ip| ip.parse::<IpAddr>().is_ok())
        {
            return true;
        }
        g.opt(&a.ip_address);
    }
    if let Some(c) = &e.context {
        for s in [&c.request_id, &c.trace_id, &c.span_id] {
            if !skips_id(r, s) {
                g.opt(s);
            }
        }
    }
    if let Some(h) = &e.http {
        if let Some(q) = &h.query
            && g.form(q)
        {
            return true;
        }
        if g.map(&h.headers, 0) {
            return true;
        }
        for body in [&h.request_body, &h.response_body].into_iter().flatten() {
            if g.body(body) {
                return true;
            }
        }
    }
    if g.map(&e.details, 0) {
        return true;
    }
    if g.found || r.scanner.any(buf) {
        return true;
    }
    // Encoded secrets (`%XX`, `\uXXXX`, nested): decoding the whole buffer at once decodes
    // every string in it, layer by layer.
    any_decoded(r, buf)
}

/// True when a secret shows once up to [`MAX_DECODE_ROUNDS`] layers of encoding are off.
fn any_decoded(r: &Inner, s: &str) -> bool {
    let mut layer = decode_once(s);
    for _ in 0..MAX_DECODE_ROUNDS {
        let Some(text) = layer else { return false };
        if r.scanner.any(&text) {
            return true;
        }
        layer = decode_once(&text);
    }
    false
}

/// True when an AWS access key id appears anywhere in the event (asked only of events that
/// need redaction): every field is then searched for a secret key as well, since a client
/// may send the two apart. Walks no deeper than redaction does.
pub(crate) fn aws_context(e: &AuditEvent) -> bool {
    fn has(s: &str) -> bool {
        has_aws_access_key(s) || decode_once(s).is_some_and(|d| has_aws_access_key(&d))
    }
    fn value(v: &Value, depth: usize) -> bool {
        match v {
            Value::String(s) => has(s),
            Value::Array(a) if depth <= MAX_DEPTH => a.iter().any(|v| value(v, depth + 1)),
            Value::Object(m) if depth <= MAX_DEPTH => map(m, depth + 1),
            _ => false,
        }
    }
    fn map(m: &Map<String, Value>, depth: usize) -> bool {
        m.iter().any(|(k, v)| has(k) || value(v, depth))
    }
    let request_id = e.context.as_ref().and_then(|c| c.request_id.as_deref());
    let query = e.http.as_ref().and_then(|h| h.query.as_deref());
    let in_http = e.http.as_ref().is_some_and(|h| {
        map(&h.headers, 0)
            || [&h.request_body, &h.response_body]
                .into_iter()
                .flatten()
                .filter_map(|b| b.content.as_ref())
                .any(|b| value(b, 0))
    });
    std::iter::once(e.event_type.as_str())
        .chain(free_text(e))
        .chain(request_id)
        .chain(query)
        .any(has)
        || in_http
        || map(&e.details, 0)
}

/// The event's free-text fields: every string field but the event type, the client's
/// address, the correlation ids, the query and the free-form maps and bodies, which each
/// pass treats on their own.
fn free_text(e: &AuditEvent) -> impl Iterator<Item = &str> {
    let actor = e.actor.as_ref().into_iter().flat_map(|a| {
        [
            &a.kind,
            &a.id,
            &a.email,
            &a.role,
            &a.user_agent,
            &a.client_id,
        ]
    });
    let target = e
        .target
        .as_ref()
        .into_iter()
        .flat_map(|t| [&t.kind, &t.id, &t.name]);
    let context = e
        .context
        .as_ref()
        .into_iter()
        .flat_map(|c| [&c.session_id, &c.organization_id, &c.service]);
    let http = e
        .http
        .as_ref()
        .into_iter()
        .flat_map(|h| [&h.method, &h.route, &h.path]);
    let rpc = e
        .rpc
        .as_ref()
        .into_iter()
        .flat_map(|r| [&r.system, &r.service, &r.method]);
    std::iter::once(&e.description)
        .chain(actor)
        .chain(target)
        .chain(context)
        .chain(http)
        .chain(rpc)
        .filter_map(|s| s.as_deref())
}

/// True for a `context` id (request, trace, span) that is not scanned: one in the form the
/// layer mints and W3C `traceparent` carries, a lowercase hyphenated UUID or 32 or 16
/// lowercase hex digits, while the redactor has no custom patterns. Every built-in trigger
/// holds a byte outside `[0-9a-f-]`, and emails and IP addresses need `@` and `.`, so the
/// only finding such an id could give is a false one: sixteen decimal digits that pass the
/// card check, which masked the span id and broke the correlation it exists for. Custom
/// patterns are the user's own rules and see every id.
fn skips_id(r: &Inner, id: &Option<Text>) -> bool {
    !r.scanner.has_custom() && id.as_deref().is_some_and(is_canonical_id)
}

/// Checked without branching per byte, so that the check costs less than the scan it saves.
fn is_canonical_id(s: &str) -> bool {
    fn hex(c: u8) -> bool {
        c.wrapping_sub(b'0') < 10 || c.wrapping_sub(b'a') < 6
    }
    fn all_hex(b: &[u8]) -> bool {
        b.iter().fold(true, |ok, &c| ok & hex(c))
    }
    let b = s.as_bytes();
    match b.len() {
        16 | 32 => all_hex(b),
        36 => {
            b[8] == b'-'
                && b[13] == b'-'
                && b[18] == b'-'
                && b[23] == b'-'
                && all_hex(&b[..8])
                && all_hex(&b[9..13])
                && all_hex(&b[14..18])
                && all_hex(&b[19..23])
                && all_hex(&b[24..])
        }
        _ => false,
    }
}

/// Strings at least this long are scanned where they are instead of being copied.
const SCAN_IN_PLACE: usize = 4096;

struct Gather<'a> {
    r: &'a Inner,
    buf: &'a mut String,
    /// A string scanned in place held a secret.
    found: bool,
    /// How many JSON-in-string layers deep the current string is.
    json_depth: usize,
}

/// JSON held in a string held in JSON… is parsed this many layers deep when gathering.
const MAX_JSON_LAYERS: usize = 4;

impl Gather<'_> {
    fn push(&mut self, s: &str) {
        let lead = s.trim_start();
        if (lead.starts_with('{') || lead.starts_with('['))
            && s.len() <= MAX_JSON_IN_STRING
            && self.json_depth < MAX_JSON_LAYERS
            && let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s)
        {
            // What the walk will see: unescaped keys and values, not the JSON text.
            self.json_depth += 1;
            let secret = self.value(&v, 0);
            self.json_depth -= 1;
            if secret {
                self.found = true;
            }
        }
        self.push_text(s);
    }

    fn push_text(&mut self, s: &str) {
        if s.len() >= SCAN_IN_PLACE {
            self.found = self.found || self.r.scanner.any(s) || any_decoded(self.r, s);
        } else {
            self.buf.push_str(s);
            self.buf.push('\0');
        }
    }

    fn opt(&mut self, s: &Option<Text>) {
        if let Some(s) = s {
            self.push(s);
        }
    }

    /// True when a key is secret (or the nesting too deep to trust).
    fn map(&mut self, m: &Map<String, Value>, depth: usize) -> bool {
        m.iter().any(|(k, v)| {
            // A key is scanned like a value: a client can put a secret in either.
            self.push(k);
            self.r.keys.classify(k).is_some() || self.value(v, depth + 1)
        })
    }

    fn value(&mut self, v: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return true;
        }
        match v {
            Value::String(s) => {
                self.push(s);
                false
            }
            Value::Number(n) => {
                if n.as_u64().is_some_and(|n| n >= 1_000_000_000_000) {
                    self.push(&n.to_string());
                }
                false
            }
            Value::Array(a) => a.iter().any(|v| self.value(v, depth + 1)),
            Value::Object(m) => self.map(m, depth),
            Value::Bool(_) | Value::Null => false,
        }
    }

    /// A query string or form body: secret parameter names, and every decoded value.
    fn form(&mut self, q: &str) -> bool {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = form_decode(k);
            if self.r.keys.classify(&name).is_some() {
                return true;
            }
            self.push(&name);
            self.push(&form_decode(v));
        }
        false
    }

    fn body(&mut self, b: &CapturedBody) -> bool {
        match &b.content {
            Some(Value::String(s)) if is_form(b) => self.form(s),
            Some(v) => self.value(v, 0),
            None => false,
        }
    }
}

fn is_form(b: &CapturedBody) -> bool {
    b.content_type
        .as_deref()
        .is_some_and(|t| t.contains("x-www-form-urlencoded"))
}

/// `+` is a space in forms; then `%XX` escapes.
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode(&spaced).unwrap_or(spaced)
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Phase 2: rewrite.

#[derive(Debug, Clone)]
enum Seg {
    Static(&'static str),
    Key(String),
    Index(usize),
}

pub(crate) struct Apply<'a> {
    r: &'a Inner,
    /// The event holds an AWS access key id: AWS secret keys are searched for everywhere.
    aws: bool,
    path: Vec<Seg>,
    paths: Vec<String>,
    findings: Vec<Finding>,
}

impl<'a> Apply<'a> {
    pub(crate) fn new(r: &'a Inner, aws: bool) -> Apply<'a> {
        Apply {
            r,
            aws,
            path: Vec::new(),
            paths: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Rewrites `e` and lists what changed in `redactedFields`; true when anything did.
    pub(crate) fn event(mut self, e: &mut AuditEvent) -> bool {
        self.event_type(e);
        self.opt("description", &mut e.description);
        if let Some(a) = &mut e.actor {
            self.path.push(Seg::Static("actor"));
            self.opt("type", &mut a.kind);
            self.opt("id", &mut a.id);
            self.opt("email", &mut a.email);
            self.opt("role", &mut a.role);
            self.ip_field("ipAddress", &mut a.ip_address);
            self.opt("userAgent", &mut a.user_agent);
            self.opt("clientId", &mut a.client_id);
            self.path.pop();
        }
        if let Some(t) = &mut e.target {
            self.path.push(Seg::Static("target"));
            self.opt("type", &mut t.kind);
            self.opt("id", &mut t.id);
            self.opt("name", &mut t.name);
            self.path.pop();
        }
        if let Some(c) = &mut e.context {
            self.path.push(Seg::Static("context"));
            for (name, id) in [
                ("requestId", &mut c.request_id),
                ("traceId", &mut c.trace_id),
                ("spanId", &mut c.span_id),
            ] {
                if !skips_id(self.r, id) {
                    self.opt(name, id);
                }
            }
            self.opt("sessionId", &mut c.session_id);
            self.opt("organizationId", &mut c.organization_id);
            self.opt("service", &mut c.service);
            self.path.pop();
        }
        if let Some(h) = &mut e.http {
            self.path.push(Seg::Static("http"));
            self.opt("method", &mut h.method);
            self.opt("route", &mut h.route);
            self.opt("path", &mut h.path);
            if let Some(q) = &mut h.query {
                self.path.push(Seg::Static("query"));
                let mut text = q.as_str().to_owned();
                if self.form(&mut text) {
                    *q = Text::from(text);
                }
                self.path.pop();
            }
            self.path.push(Seg::Static("headers"));
            self.map(&mut h.headers, 0);
            self.path.pop();
            for (name, body) in [
                ("requestBody", &mut h.request_body),
                ("responseBody", &mut h.response_body),
            ] {
                if let Some(b) = body {
                    self.path.push(Seg::Static(name));
                    self.body(b);
                    self.path.pop();
                }
            }
            self.path.pop();
        }
        if let Some(rpc) = &mut e.rpc {
            self.path.push(Seg::Static("rpc"));
            self.opt("system", &mut rpc.system);
            self.opt("service", &mut rpc.service);
            self.opt("method", &mut rpc.method);
            self.path.pop();
        }
        self.path.push(Seg::Static("details"));
        self.map(&mut e.details, 0);
        self.path.pop();

        let changed = !self.paths.is_empty();
        for p in self.paths {
            if !e.redacted_fields.contains(&p) {
                e.redacted_fields.push(p);
            }
        }
        changed
    }

    /// An event type holding a secret (a rule or handler that built one from client text)
    /// keeps its shape: each segment with a finding becomes `redacted`.
    fn event_type(&mut self, e: &mut AuditEvent) {
        let text = e.event_type.as_str();
        let secret = self.r.scanner.any(text) || (self.aws && self.has_aws_secret(text));
        if !secret {
            return;
        }
        let redacted: Vec<&str> = text
            .split('.')
            .map(|seg| {
                if self.r.scanner.any(seg) || self.has_aws_secret(seg) {
                    "redacted"
                } else {
                    seg
                }
            })
            .collect();
        if let Ok(t) = crate::EventType::new(&redacted.join(".")) {
            e.event_type = t;
            self.path.push(Seg::Static("eventType"));
            self.record();
            self.path.pop();
        }
    }

    fn has_aws_secret(&self, s: &str) -> bool {
        let mut found = Vec::new();
        aws_secret_keys(s, &mut found);
        !found.is_empty()
    }

    fn record(&mut self) {
        let mut p = String::new();
        for seg in &self.path {
            match seg {
                Seg::Static(s) => push_key(&mut p, s),
                Seg::Key(k) => push_key(&mut p, k),
                Seg::Index(i) => p.push_str(&format!("[{i}]")),
            }
        }
        self.paths.push(p);
    }

    /// A field of the event. `Text` is immutable: the rare field that holds a secret is
    /// rewritten as a `String` and put back. A field that cannot change (not JSON, nothing
    /// percent-encoded, no finding: exactly the cases where [`text`](Self::text) changes
    /// nothing) is not copied.
    fn opt(&mut self, name: &'static str, s: &mut Option<Text>) {
        if let Some(t) = s {
            let lead = t.trim_start();
            let may_change = lead.starts_with('{')
                || lead.starts_with('[')
                || t.contains('%')
                || t.contains('\\')
                || self.r.scanner.any(t)
                || (self.aws && self.has_aws_secret(t));
            if !may_change {
                return;
            }
            self.path.push(Seg::Static(name));
            let mut text = t.as_str().to_owned();
            if self.text(&mut text, 0) {
                *t = Text::from(text);
                self.record();
            }
            self.path.pop();
        }
    }

    /// An IP address field: masked as a whole when IP masking is on (IPv4 and IPv6);
    /// otherwise scanned like any text.
    fn ip_field(&mut self, name: &'static str, s: &mut Option<Text>) {
        let Some(v) = s else { return };
        if self.r.mask_ips && v.parse::<IpAddr>().is_ok() {
            *v = Text::from(self.replacement(&SecretKind::IpAddress, v));
            self.path.push(Seg::Static(name));
            self.record();
            self.path.pop();
        } else {
            self.opt(name, s);
        }
    }

    /// Redacts secrets inside one string; true when it changed. A string holding a JSON
    /// object or array is parsed and walked like `details`; when the text held a secret, it
    /// is replaced by the walked value's canonical JSON, so what a parser would not keep (a
    /// duplicate key's earlier value, odd spacing) cannot keep a secret either. Otherwise
    /// the text is searched as it is and then with up to [`MAX_DECODE_ROUNDS`] layers of
    /// encoding taken off; a secret found in a decoded layer leaves the string decoded and
    /// redacted.
    fn text(&mut self, s: &mut String, depth: usize) -> bool {
        let t = s.trim_start();
        if (t.starts_with('{') || t.starts_with('['))
            && s.len() <= MAX_JSON_IN_STRING
            && let Ok(mut v @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(s)
        {
            let before = self.paths.len();
            let walked = self.value(&mut v, depth + 1);
            // Inner paths were recorded; the string itself is the one that changed.
            self.paths.truncate(before);
            let raw_secret = walked || self.flat_text(&mut s.clone());
            if raw_secret {
                let canonical = serde_json::to_string(&v).unwrap_or_else(|_| MASK.to_owned());
                if canonical != *s {
                    *s = canonical;
                    return true;
                }
            }
            return false;
        }
        self.layers(s)
    }

    /// Replaces the findings in `s` as it is, then in each layer of decoding; a finding in a
    /// decoded layer leaves `s` decoded and redacted. True when anything changed.
    fn layers(&mut self, s: &mut String) -> bool {
        let mut changed = self.spans(s);
        let mut layer = decode_once(s);
        for _ in 0..MAX_DECODE_ROUNDS {
            let Some(mut decoded) = layer else { break };
            if self.spans(&mut decoded) {
                *s = decoded.clone();
                changed = true;
            }
            layer = decode_once(&decoded);
        }
        changed
    }

    /// Replaces every finding in `s`.
    fn spans(&mut self, s: &mut String) -> bool {
        let mut findings = std::mem::take(&mut self.findings);
        self.r.scanner.find_all(s, &mut findings);
        if self.aws {
            let before = findings.len();
            aws_secret_keys(s, &mut findings);
            if findings.len() > before {
                findings.sort_by_key(|f| f.start);
                findings.dedup_by(|b, a| b.start < a.end);
            }
        }
        // What a previous pass wrote is found again (`password=[REDACTED]`); leaving text
        // whose redaction is itself makes a second pass change nothing.
        findings.retain(|f| f.merged || !self.already_redacted(&f.kind, &s[f.start..f.end]));
        let mut changed = false;
        if !findings.is_empty() {
            let mut out = String::with_capacity(s.len());
            let mut last = 0;
            for f in &findings {
                out.push_str(&s[last..f.start]);
                let text = &s[f.start..f.end];
                match self.r.action_for(&f.kind) {
                    // Keeping part of a span made of several findings could keep a secret.
                    Action::Partial if f.merged => out.push_str(MASK),
                    _ => out.push_str(&self.replacement(&f.kind, text)),
                }
                last = f.end;
            }
            out.push_str(&s[last..]);
            changed = out != *s;
            *s = out;
        }
        self.findings = findings;
        changed
    }

    /// True when redacting `text` again would give `text` (or it is already a keyed-hash
    /// token under one of our key ids). Exact: a secret that merely looks like a marker is
    /// still replaced.
    fn already_redacted(&self, kind: &SecretKind, text: &str) -> bool {
        match self.r.action_for(kind) {
            Action::Hash => self.r.is_token(text),
            _ => self.replacement(kind, text) == text,
        }
    }

    fn replacement(&self, kind: &SecretKind, text: &str) -> String {
        match self.r.action_for(kind) {
            Action::Remove => String::new(),
            Action::Mask => MASK.to_owned(),
            Action::Tag => format!("[{}]", kind.tag()),
            Action::Partial => partial(kind, text),
            Action::Hash => self.r.hash(text.as_bytes()),
        }
    }

    /// A map whose secret-named keys lose their values whole, and whose keys are searched
    /// for secrets like values (a key holding one is renamed to its redacted form); true
    /// when anything changed.
    fn map(&mut self, m: &mut Map<String, Value>, depth: usize) -> bool {
        let mut changed = false;
        let mut removed = Vec::new();
        let mut renamed = Vec::new();
        for (k, v) in m.iter_mut() {
            let mut name = k.clone();
            if self.flat_text(&mut name) {
                // A key that held a secret loses its value too: the pair was the client's
                // and its value may be the rest of the secret.
                renamed.push((k.clone(), name.clone()));
                self.path.push(Seg::Key(name));
                self.record();
                self.path.pop();
                *v = Value::String(MASK.to_owned());
                changed = true;
                continue;
            }
            self.path.push(Seg::Key(name));
            if let Some(kind) = self.r.keys.classify(k) {
                let action = self.r.action_for(kind);
                let redo = match action {
                    Action::Remove => true,
                    _ => self.key_value(kind, action, v) != *v && !self.is_own_token(action, v),
                };
                if redo {
                    match action {
                        Action::Remove => removed.push(k.clone()),
                        action => *v = self.key_value(kind, action, v),
                    }
                    self.record();
                    changed = true;
                }
            } else if self.value(v, depth + 1) {
                changed = true;
            }
            self.path.pop();
        }
        for k in removed {
            m.remove(&k);
        }
        for (old, new) in renamed {
            if let Some(v) = m.remove(&old) {
                m.insert(new, v);
            }
        }
        changed
    }

    /// Redacts secrets in a key name (searched like any text, JSON aside); true when it
    /// changed. The key's own path is not recorded here: the caller records the new name.
    fn flat_text(&mut self, k: &mut String) -> bool {
        let quick = self.r.scanner.any(k)
            || (self.aws && self.has_aws_secret(k))
            || k.contains('%')
            || k.contains('\\');
        quick && self.layers(k)
    }

    fn is_own_token(&self, action: Action, v: &Value) -> bool {
        action == Action::Hash && matches!(v, Value::String(s) if self.r.is_token(s))
    }

    fn key_value(&self, kind: &SecretKind, action: Action, v: &Value) -> Value {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Value::String(match action {
            Action::Partial if matches!(v, Value::String(_)) => partial(kind, &text),
            Action::Hash => self.r.hash(text.as_bytes()),
            Action::Tag => format!("[{}]", kind.tag()),
            _ => MASK.to_owned(),
        })
    }

    fn value(&mut self, v: &mut Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            let deep = std::mem::replace(v, Value::String(TOO_DEEP.to_owned()));
            drop_iteratively(deep);
            self.record();
            return true;
        }
        match v {
            Value::String(s) => {
                let changed = self.text(s, depth);
                if changed {
                    self.record();
                }
                changed
            }
            Value::Number(n) => {
                let mut text = n.to_string();
                if n.as_u64().is_some_and(|n| n >= 1_000_000_000_000) && self.spans(&mut text) {
                    *v = Value::String(text);
                    self.record();
                    return true;
                }
                false
            }
            Value::Array(items) => {
                let mut changed = false;
                for (i, item) in items.iter_mut().enumerate() {
                    self.path.push(Seg::Index(i));
                    changed |= self.value(item, depth + 1);
                    self.path.pop();
                }
                changed
            }
            Value::Object(m) => self.map(m, depth),
            Value::Bool(_) | Value::Null => false,
        }
    }

    /// A query string or form body, rebuilt with secret values replaced (or dropped) and
    /// secrets in parameter names replaced.
    fn form(&mut self, q: &mut String) -> bool {
        let mut out = Vec::new();
        let mut changed = false;
        for pair in q.split('&') {
            let (rk, rv) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let original = form_decode(rk);
            let mut k = original.clone();
            let mut name_changed = false;
            if self.flat_text(&mut k) {
                name_changed = true;
                changed = true;
                self.path.push(Seg::Key(k.clone()));
                self.record();
                self.path.pop();
            }
            let ek = if name_changed {
                form_encode(&k)
            } else {
                rk.to_owned()
            };
            let Some(rv) = rv else {
                out.push(ek);
                continue;
            };
            if name_changed {
                // As in maps: a name that held a secret loses its value too.
                out.push(format!("{ek}={}", form_encode(MASK)));
                continue;
            }
            let mut v = form_decode(rv);
            self.path.push(Seg::Key(k.clone()));
            if let Some(kind) = self.r.keys.classify(&original) {
                let action = self.r.action_for(kind);
                let old = Value::String(v);
                let new = self.key_value(kind, action, &old);
                if action != Action::Remove && (new == old || self.is_own_token(action, &old)) {
                    out.push(format!("{ek}={rv}"));
                } else {
                    changed = true;
                    self.record();
                    if let (Value::String(nv), false) = (new, action == Action::Remove) {
                        out.push(format!("{ek}={}", form_encode(&nv)));
                    }
                }
            } else if self.text(&mut v, 0) {
                changed = true;
                self.record();
                out.push(format!("{ek}={}", form_encode(&v)));
            } else {
                out.push(format!("{ek}={rv}"));
            }
            self.path.pop();
        }
        if changed {
            *q = out.join("&");
        }
        changed
    }

    /// A captured body; a body that held a secret loses its hash too (a hash of a secret
    /// is not safe to keep).
    fn body(&mut self, b: &mut CapturedBody) {
        let form = is_form(b);
        let changed = match &mut b.content {
            Some(Value::String(s)) if form => self.form(s),
            Some(Value::String(s)) => {
                self.path.push(Seg::Static("content"));
                let changed = self.text(s, 0);
                if changed {
                    self.record();
                }
                self.path.pop();
                changed
            }
            Some(v) => {
                self.path.push(Seg::Static("content"));
                let changed = self.value(v, 0);
                self.path.pop();
                changed
            }
            None => false,
        };
        if changed && b.sha256.take().is_some() {
            self.path.push(Seg::Static("sha256"));
            self.record();
            self.path.pop();
        }
    }
}

/// Dismantles a value without recursion: serde_json drops nested values recursively, and a
/// value nested thousands deep (built in code; parsing stops at 128) would overflow the stack.
fn drop_iteratively(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn push_key(p: &mut String, key: &str) {
    if !p.is_empty() {
        p.push('.');
    }
    p.push_str(key);
}

/// Keeps just enough to recognise a value: last four for cards and tokens, the first
/// letter and domain of an e-mail address, the network of an IP address.
fn partial(kind: &SecretKind, text: &str) -> String {
    match kind {
        SecretKind::CardNumber => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            format!("****{}", &digits[digits.len().saturating_sub(4)..])
        }
        SecretKind::Email => match text.split_once('@') {
            Some((local, domain)) => {
                let first = local.chars().next().map(String::from).unwrap_or_default();
                format!("{first}***@{domain}")
            }
            None => MASK.to_owned(),
        },
        SecretKind::IpAddress => match text.split('/').next().unwrap_or(text).parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            Ok(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
            Err(_) => MASK.to_owned(),
        },
        _ => {
            let chars: Vec<char> = text.chars().collect();
            if chars.len() >= 8 {
                let tail: String = chars[chars.len() - 4..].iter().collect();
                format!("****{tail}")
            } else {
                MASK.to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_canonical_id;

    #[test]
    fn canonical_ids_are_recognised_and_nothing_else() {
        let uuid = "0193f0c4-7a1b-7c3d-8e4f-0123456789ab";
        for id in [uuid, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"] {
            assert!(is_canonical_id(id), "{id}");
            // Any byte out of place, in any position, and the id is scanned.
            for i in 0..id.len() {
                for bad in [b'A', b'g', b'-', b' ', b'/', b'0' - 1, b'9' + 1, b'a' - 1] {
                    let mut b = id.as_bytes().to_vec();
                    if b[i] == bad {
                        continue;
                    }
                    b[i] = bad;
                    let s = String::from_utf8(b).unwrap_or_default();
                    assert!(!is_canonical_id(&s), "{s}");
                }
            }
        }
        for id in [
            "",
            "0",
            "0193f0c47a1b7c3d8e4f0123456789ab0000",
            "abc-def",
            &uuid[1..],
        ] {
            assert!(!is_canonical_id(id), "{id}");
        }
    }
}
