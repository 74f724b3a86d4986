//! Classification: which audit event a request is, decided by an ordered rule table (first
//! match wins), with sensible defaults when no rule matches.
//!
//! ```
//! use http::Method;
//! use audit_tower::classify::{Level, Rule, Rules};
//!
//! let rules = Rules::new()
//!     .rule(Rule::any("/health").level(Level::None))
//!     .rule(Rule::post("/auth/login").event_type("auth.login").outcome_suffix())
//!     .rule(Rule::delete("/v1/indexes/{name}").event_type("data.index.delete").target("index", "name"));
//!
//! let c = rules.classify(&Method::DELETE, "/v1/indexes/products", None);
//! assert_eq!(c.event_type(), "data.index.delete");
//! assert_eq!(c.target(), Some(("index", "products")));
//!
//! // No rule, but the framework matched a route: its template's literal segments decide.
//! let c = rules.classify(&Method::PUT, "/v1/api-keys/k1", Some("/v1/api-keys/{id}"));
//! assert_eq!(c.event_type(), "data.api_key.update");
//! assert_eq!(c.target(), Some(("api_key", "k1")));
//!
//! // No rule and no route: nothing comes from the client's path.
//! let c = rules.classify(&Method::GET, "/wp-admin/setup.php", None);
//! assert_eq!(c.event_type(), "data.request.unmatched");
//! assert_eq!(c.target(), None);
//! assert_eq!(rules.classify(&Method::GET, "/health", None).level(), Level::None);
//! ```
//!
//! # Defaults without a matching rule
//! - With a route template (axum's `MatchedPath`, or the pattern of a rule that matched but
//!   named no event type): `GET`/`HEAD` → `read`, `POST` → `create`, `PUT`/`PATCH` →
//!   `update`, `DELETE` → `delete`, on the template's last literal segment that is not a
//!   version (`v1`, `api`), singularised, with the capture after it as the target id:
//!   `DELETE /v1/indexes/{name}` → `data.index.delete` with target `index`/`<name>`. A
//!   nested resource names the last one and keeps its parent in `details.parent`:
//!   `PUT /v1/indexes/{name}/vectors/{id}` → `data.vector.update` of `vector`/`<id>`, with
//!   `{"type": "index", "id": "<name>"}`. Only literal segments count: in
//!   `/{tenant}/items/{id}` the resource is `items`, and `GET /v1/indexes/login` matched as
//!   `/v1/indexes/{name}` is `data.index.read` of index `login`, not a login.
//! - Templates that look like authentication (`login`, `signin`, `logout`, `token`,
//!   `oauth`, `mfa`, `password`, `session`) → `auth.<word>.success|failure`.
//! - **Without a template** (no route matched, an axum fallback, plain hyper or tonic
//!   without rules): `data.request.unmatched` ([`UNMATCHED`]), no target, the path kept
//!   only in `http.path` (redacted and capped). A client's path never names an event type,
//!   a target type or an authentication event. Give hyper and tonic services [`Rule`]s for
//!   the events they mean.
//! - **gRPC calls** (no template; the service and method come from `/<service>/<method>`,
//!   and only when the server answered in gRPC — a client's gRPC content type alone names
//!   nothing):
//!   the method's first word decides the action and the rest names the resource, a method
//!   with an authentication word is `auth.<word>.success|failure`, and a call the server
//!   answered `UNIMPLEMENTED` is [`UNMATCHED`] (so only the server's own methods name
//!   events):
//!
//!   | the method's first word | action | example |
//!   |---|---|---|
//!   | Get, List, Read, Search, Query, Find, Fetch, Watch, Describe, Lookup, Count, Check, Stream | `read` | `ListThings` → `data.thing.read` |
//!   | Create, Add, Insert, Register, Upload, Import | `create` | `CreateApiKey` → `data.api_key.create` |
//!   | Update, Set, Patch, Modify, Edit, Replace, Upsert, Put, Rename, Move, Enable, Disable | `update` | `UpdateRoute` → `data.route.update` |
//!   | Delete, Remove, Destroy, Purge, Drop, Erase | `delete` | `DeleteThing` → `data.thing.delete` |
//!   | anything else | `call` on the service | `demo.v1.Greeter/SayHello` → `data.greeter.call` |
//! - `GET /health`, `/healthz`, `/livez`, `/readyz`, `/ready`, `/metrics` are not audited.
//! - Whatever matched, a 401/403 answer (gRPC: 7 PERMISSION_DENIED, 16 UNAUTHENTICATED)
//!   becomes `security.access.denied` and a 429 (gRPC: 8 RESOURCE_EXHAUSTED)
//!   `security.rate_limit.triggered` unless the rule pinned its event type
//!   ([`Rule::keep_on_denial`]).

mod defaults;
mod pattern;
mod route;

pub use pattern::RoutePattern;
pub(crate) use route::RouteMeaning;
pub use route::{AuditRoute, AuditRouteService};

pub use defaults::UNMATCHED;

/// A gRPC call as classification sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rpc<'a> {
    /// Fully qualified service, e.g. `demo.v1.Greeter`.
    pub(crate) service: &'a str,
    /// Method, e.g. `DeleteThing`.
    pub(crate) method: &'a str,
    /// The gRPC status, when the answer carried one.
    pub(crate) status: Option<i32>,
}
use defaults::{concat, default_event_type};

use std::time::Duration;

use audit_core::{Category, Outcome, Severity, Text};
use std::sync::Arc;

use http::{HeaderMap, Method};

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Level {
    /// Not audited (health checks).
    None,
    /// Who, what, when, where, result — no bodies (the default).
    #[default]
    Metadata,
    /// Metadata and the request body, up to the capture limit.
    Request,
    /// Metadata and both bodies.
    RequestResponse,
}

/// What happens when the pipeline cannot take the event at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// Never block the request; a lost event is counted and reported (the default).
    #[default]
    BestEffort,
    /// Block the response up to `timeout` for room in the buffer.
    Block {
        /// Longest wait.
        timeout: Duration,
    },
    /// Run the handler only if the pipeline promises to take the event (room reserved, a
    /// sink healthy); otherwise answer `503` with a JSON error and do not run it.
    Strict,
}

/// One row of the rule table.
#[derive(Debug, Clone)]
#[must_use]
pub struct Rule {
    methods: Vec<Method>,
    pattern: RoutePattern,
    event_type: Option<Text>,
    outcome_suffix: bool,
    keep_on_denial: bool,
    category: Option<Category>,
    severity: Option<Severity>,
    /// Target type and the path parameter holding its id.
    target: Option<(Text, Option<String>)>,
    level: Level,
    delivery: Delivery,
}

macro_rules! method_ctors {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(pattern: &str) -> Rule {
                Rule::new(&[Method::$method], pattern)
            }
        )*
    };
}

impl Rule {
    /// A rule for `methods` (empty: any) on `pattern`.
    pub fn new(methods: &[Method], pattern: &str) -> Rule {
        Rule {
            methods: methods.to_vec(),
            pattern: RoutePattern::new(pattern),
            event_type: None,
            outcome_suffix: false,
            keep_on_denial: false,
            category: None,
            severity: None,
            target: None,
            level: Level::Metadata,
            delivery: Delivery::BestEffort,
        }
    }

    /// Any method on `pattern`.
    pub fn any(pattern: &str) -> Rule {
        Rule::new(&[], pattern)
    }

    method_ctors! {
        /// `GET` on `pattern`.
        get => GET;
        /// `POST` on `pattern`.
        post => POST;
        /// `PUT` on `pattern`.
        put => PUT;
        /// `PATCH` on `pattern`.
        patch => PATCH;
        /// `DELETE` on `pattern`.
        delete => DELETE;
    }

    /// The event type (dotted lowercase); validated when the event is built.
    pub fn event_type(mut self, event_type: &str) -> Self {
        self.event_type = Some(Text::new(event_type));
        self
    }

    /// Appends `.success` or `.failure` to the event type by outcome (`auth.login` →
    /// `auth.login.failure`).
    pub fn outcome_suffix(mut self) -> Self {
        self.outcome_suffix = true;
        self
    }

    /// Keeps this rule's event type on 401/403/429 answers instead of the security event
    /// types (the result still says `denied`).
    pub fn keep_on_denial(mut self) -> Self {
        self.keep_on_denial = true;
        self
    }

    /// The category (default: from the event type's first segment).
    pub fn category(mut self, category: Category) -> Self {
        self.category = Some(category);
        self
    }

    /// The severity (default: by outcome).
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// The target's type, and the path parameter that holds its id.
    pub fn target(mut self, kind: &str, id_param: &str) -> Self {
        self.target = Some((Text::new(kind), Some(id_param.to_owned())));
        self
    }

    /// The target's type, without an id from the path.
    pub fn target_type(mut self, kind: &str) -> Self {
        self.target = Some((Text::new(kind), None));
        self
    }

    /// How much is recorded.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// What happens when the pipeline is full.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    fn matches_method(&self, m: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(m)
    }
}

/// An ordered rule table; the first matching rule wins.
#[derive(Debug, Clone)]
#[must_use]
pub struct Rules {
    rules: Vec<Rule>,
    defaults: bool,
    /// The application's routes, when given: every rule must name one.
    known: Vec<RoutePattern>,
    /// Chooses a rule by function before the table is tried.
    chooser: Option<Chooser>,
}

/// What a [`Rules::choose_with`] function sees of a request, before the handler runs.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path as the client sent it (hostile: never name an event type from it).
    pub path: &'a str,
    /// The route template the router matched (axum's `MatchedPath`), when known.
    pub template: Option<&'a str>,
    /// The request's headers (as hostile as the path).
    pub headers: &'a HeaderMap,
}

type ChooseFn = dyn Fn(&RequestView<'_>) -> Option<Rule> + Send + Sync;

/// A [`Rules::choose_with`] function.
#[derive(Clone)]
struct Chooser(Arc<ChooseFn>);

impl std::fmt::Debug for Chooser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chooser(<fn>)")
    }
}

/// Why a rule table cannot be used: each rule at fault, by position and pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    problems: Vec<String>,
}

impl RulesError {
    /// One line per problem.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit rules: {}", self.problems.join("; "))
    }
}

impl std::error::Error for RulesError {}

impl Default for Rules {
    fn default() -> Self {
        Rules::new()
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// No rule matched and the default event type is not worked out yet (the layer leaves
    /// that to the worker; see [`Rules::classify`] for the eager form).
    lazy_default: bool,
    event_type: Text,
    outcome_suffix: bool,
    keep_on_denial: bool,
    category: Option<Category>,
    severity: Option<Severity>,
    target: Option<(Text, Option<Text>)>,
    /// The resource the default target belongs to, for a nested resource.
    parent: Option<(Text, Option<Text>)>,
    level: Level,
    delivery: Delivery,
    route: Option<Text>,
}

impl Classification {
    /// The event type before outcome adjustments.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The target type and id, when known.
    pub fn target(&self) -> Option<(&str, &str)> {
        match &self.target {
            Some((kind, Some(id))) => Some((kind, id)),
            _ => None,
        }
    }

    /// How much is recorded.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The delivery mode.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The route template used (the matched rule's pattern or axum's `MatchedPath`).
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// Works out a deferred default classification (event type, target, auth suffix), from
    /// the route template when the framework matched one, else from the gRPC call.
    pub(crate) fn resolve(
        &mut self,
        method: &Method,
        path: &str,
        template: Option<&str>,
        rpc: Option<Rpc<'_>>,
    ) {
        if std::mem::take(&mut self.lazy_default) {
            let d = match (template, rpc) {
                (None, Some(call)) => defaults::grpc_event_type(call),
                _ => default_event_type(method, path, template),
            };
            let (event_type, target, auth) = (d.event_type, d.target, d.auth);
            self.parent = d.parent;
            self.event_type = event_type;
            self.target = target;
            self.outcome_suffix = auth;
        }
    }

    /// Applies a route's own meaning ([`AuditRoute`]) over what the rules or defaults said.
    pub(crate) fn apply_route(&mut self, route: RouteMeaning) {
        let m = &route.meaning;
        if let Some(t) = &m.event_type {
            self.event_type = t.clone();
            self.outcome_suffix = m.outcome_suffix;
        }
        self.keep_on_denial |= m.keep_on_denial;
        if m.category.is_some() {
            self.category = m.category;
        }
        if m.severity.is_some() {
            self.severity = m.severity;
        }
        if let Some((kind, _)) = &m.target {
            self.target = Some((kind.clone(), route.target_id));
            self.parent = None;
        }
    }

    /// Takes the target type and id out, for the event (the classification's last use).
    pub(crate) fn take_target(&mut self) -> Option<(Text, Option<Text>)> {
        self.target.take()
    }

    /// Takes the parent of a nested default target out, for the event's details.
    pub(crate) fn take_parent(&mut self) -> Option<(Text, Option<Text>)> {
        self.parent.take()
    }

    /// Takes the route out, for the event (the classification's last use).
    pub(crate) fn take_route(&mut self) -> Option<Text> {
        self.route.take()
    }

    pub(crate) fn category(&self) -> Option<Category> {
        self.category
    }

    /// The event names an attempt by its outcome (`.success`/`.failure`) and keeps its type
    /// on 401/403: a refusal there is the attempt failing.
    pub(crate) fn names_an_attempt(&self) -> bool {
        self.outcome_suffix && self.keep_on_denial
    }

    /// The final event type, severity and category for an outcome, HTTP status and gRPC
    /// status.
    ///
    /// Takes the event type out (this is the classification's last use), so no copy is made.
    pub(crate) fn finish(
        &mut self,
        outcome: Outcome,
        status: Option<u16>,
        grpc: Option<i32>,
    ) -> (Text, Option<Category>, Severity) {
        // gRPC answers HTTP 200 whatever happened: its own codes for "who are you" (16),
        // "not you" (7) and "too many" (8) count like 401, 403 and 429.
        let denied = matches!(status, Some(401 | 403)) || matches!(grpc, Some(7 | 16));
        let limited = status == Some(429) || grpc == Some(8);
        let security = match (denied, limited) {
            _ if self.keep_on_denial => None,
            (true, _) => Some("security.access.denied"),
            (_, true) => Some("security.rate_limit.triggered"),
            _ => None,
        };
        if let Some(t) = security {
            return (
                Text::from_static(t),
                Some(Category::Security),
                Severity::Warning,
            );
        }
        let mut event_type = std::mem::take(&mut self.event_type);
        if self.outcome_suffix {
            let suffix = if outcome == Outcome::Success {
                ".success"
            } else {
                ".failure"
            };
            event_type = concat(&[&event_type, suffix]);
        }
        let severity = self.severity.unwrap_or(match outcome {
            Outcome::Success | Outcome::Cancelled => Severity::Info,
            Outcome::Failure | Outcome::Denied => Severity::Warning,
            _ => Severity::Error,
        });
        (event_type, self.category, severity)
    }
}

impl Rules {
    /// An empty table (the defaults still apply to unmatched requests).
    pub fn new() -> Rules {
        Rules {
            rules: Vec::new(),
            defaults: true,
            known: Vec::new(),
            chooser: None,
        }
    }

    /// Appends a rule (rules are tried in the order added).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The application's routes (templates in the same syntax, or gRPC paths such as
    /// `/acme.v1.Vectors/Upsert`), so that [`check`](Self::check) refuses a rule whose
    /// pattern names none of them: a misspelt pattern would otherwise never match and leave
    /// its requests to the defaults. Without it, only each pattern's own syntax is checked.
    pub fn routes<I, S>(mut self, routes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.known = routes
            .into_iter()
            .map(|r| RoutePattern::new(r.as_ref()))
            .collect();
        self
    }

    /// Checks every rule: its pattern's syntax (see [`RoutePattern`]), that the path
    /// parameter its target names is one the pattern captures, that its event type is valid,
    /// and, with [`routes`](Self::routes), that its pattern names one of them.
    /// [`AuditLayer::rules`](crate::AuditLayer::rules) runs this and refuses a table with a
    /// problem; call it yourself to get the error as a value (rules read from a file).
    ///
    /// ```
    /// use audit_tower::classify::{Rule, Rules};
    ///
    /// let rules = Rules::new()
    ///     .routes(["/v1/indexes/{name}", "/v1/indexes/{name}/vectors/{id}"])
    ///     .rule(Rule::delete("/v1/indexs/{name}").target("index", "name"))
    ///     .rule(Rule::put("/v1/indexes/{name}/vectors/{id}").target("vector", "vid"));
    /// let err = rules.check().unwrap_err().to_string();
    /// assert!(err.contains("rule 1 (`/v1/indexs/{name}`) names none of the routes"));
    /// assert!(err.contains("rule 2 (`/v1/indexes/{name}/vectors/{id}`): the target's id parameter `vid`"));
    /// ```
    pub fn check(&self) -> Result<(), RulesError> {
        let mut problems = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let n = i + 1;
            let pattern = rule.pattern.as_str();
            if let Some(p) = rule.pattern.problem() {
                problems.push(format!("rule {n}: {p}"));
                continue;
            }
            if let Some((_, Some(param))) = &rule.target
                && !rule.pattern.has_capture(param)
            {
                problems.push(format!(
                    "rule {n} (`{pattern}`): the target's id parameter `{param}` is not \
                     captured by the pattern"
                ));
            }
            if let Some(t) = &rule.event_type
                && let Err(e) = audit_core::EventType::new(t)
            {
                problems.push(format!("rule {n} (`{pattern}`): {e}"));
            }
            if !self.known.is_empty() && !self.known.iter().any(|r| rule.pattern.covers(r.as_str()))
            {
                problems.push(format!(
                    "rule {n} (`{pattern}`) names none of the routes given to Rules::routes"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RulesError { problems })
        }
    }

    /// Chooses the rule for a request with `f`, in tower-http's style, before the table is
    /// tried: for what a pattern cannot say, such as one endpoint serving many actions named
    /// by a header. A returned rule applies as if it had matched (its method and pattern are
    /// not checked against the request; its pattern still yields the target's id);
    /// `None` leaves the request to the table and the defaults. `f` runs on every request,
    /// on the request path: keep it quick. What it reads is the client's: map it to event
    /// types you chose, never pass it through.
    ///
    /// ```
    /// use audit_tower::classify::{Rule, Rules};
    /// use http::Method;
    ///
    /// let rules = Rules::new().choose_with(|req| {
    ///     if req.path != "/rpc" {
    ///         return None;
    ///     }
    ///     let event_type = match req.headers.get("x-rpc-action")?.to_str().ok()? {
    ///         "index.drop" => "data.index.delete",
    ///         "key.rotate" => "admin.api_key.rotate",
    ///         _ => "data.rpc.call",
    ///     };
    ///     Some(Rule::any("/rpc").event_type(event_type))
    /// });
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-rpc-action", "key.rotate".parse().unwrap());
    /// let c = rules.classify_request(&Method::POST, "/rpc", None, &headers);
    /// assert_eq!(c.event_type(), "admin.api_key.rotate");
    /// ```
    pub fn choose_with<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Option<Rule> + Send + Sync + 'static,
    {
        self.chooser = Some(Chooser(Arc::new(f)));
        self
    }

    /// Turns the built-in defaults off: unmatched requests are not audited.
    pub fn without_defaults(mut self) -> Self {
        self.defaults = false;
        self
    }

    /// Classifies a request. `template` is the framework's matched route (axum's
    /// `MatchedPath`) when known; rules match it by shape, else the concrete `path`.
    pub fn classify(&self, method: &Method, path: &str, template: Option<&str>) -> Classification {
        self.classify_request(method, path, template, &HeaderMap::new())
    }

    /// Like [`classify`](Self::classify), with the request's headers for a
    /// [`choose_with`](Self::choose_with) function.
    pub fn classify_request(
        &self,
        method: &Method,
        path: &str,
        template: Option<&str>,
        headers: &HeaderMap,
    ) -> Classification {
        let mut c = self.classify_lazily(method, path, template, headers);
        c.resolve(method, path, template, None);
        if c.route.is_none() {
            c.route = template.map(Text::new);
        }
        c
    }

    /// The classification a matching `rule` gives, with the path's captures by its pattern.
    fn from_rule(
        rule: &Rule,
        method: &Method,
        path: &str,
        template: Option<&str>,
        caps: Option<&[(&str, &str)]>,
    ) -> Classification {
        let target = rule.target.as_ref().map(|(kind, param)| {
            let id = param.as_ref().and_then(|p| {
                caps?
                    .iter()
                    .find(|(name, _)| name == p)
                    .map(|(_, v)| Text::new(v))
            });
            (kind.clone(), id)
        });
        Classification {
            lazy_default: false,
            // A rule without an event type is named from its own pattern, never from
            // the client's path.
            event_type: rule.event_type.clone().unwrap_or_else(|| {
                let pattern = template.unwrap_or_else(|| rule.pattern.text().as_str());
                default_event_type(method, path, Some(pattern)).event_type
            }),
            outcome_suffix: rule.outcome_suffix,
            keep_on_denial: rule.keep_on_denial,
            category: rule.category,
            severity: rule.severity,
            target,
            parent: None,
            level: rule.level,
            delivery: rule.delivery,
            route: Some(template.map_or_else(|| rule.pattern.text().clone(), Text::new)),
        }
    }

    /// Like [`classify`](Self::classify), but leaves the default event type of an unmatched
    /// request to be worked out later (on the audit worker, off the request path), and its
    /// route to the caller, which holds the template.
    pub(crate) fn classify_lazily(
        &self,
        method: &Method,
        path: &str,
        template: Option<&str>,
        headers: &HeaderMap,
    ) -> Classification {
        if let Some(Chooser(f)) = &self.chooser {
            let view = RequestView {
                method,
                path,
                template,
                headers,
            };
            if let Some(rule) = f(&view) {
                let caps = rule.pattern.captures(path);
                return Self::from_rule(&rule, method, path, template, caps.as_deref());
            }
        }
        for rule in &self.rules {
            if !rule.matches_method(method) {
                continue;
            }
            let by_template = template.is_some_and(|t| rule.pattern.is_template(t));
            let caps = rule.pattern.captures(path);
            if !by_template && caps.is_none() {
                continue;
            }
            return Self::from_rule(rule, method, path, template, caps.as_deref());
        }
        let level = if !self.defaults || is_health(method, path) {
            Level::None
        } else {
            Level::Metadata
        };
        Classification {
            lazy_default: true,
            event_type: Text::default(),
            outcome_suffix: false,
            keep_on_denial: false,
            category: None,
            severity: None,
            target: None,
            parent: None,
            level,
            delivery: Delivery::BestEffort,
            // The layer keeps the template itself (shared) and fills the route in later.
            route: None,
        }
    }
}

fn is_health(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches!(
            path.trim_end_matches('/'),
            "/health" | "/healthz" | "/livez" | "/readyz" | "/ready" | "/metrics"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matrix_first_match_wins() {
        let rules = Rules::new()
            .rule(Rule::post("/v1/indexes/{name}/import").event_type("data.bulk.import"))
            .rule(
                Rule::any("/v1/indexes/{name}")
                    .event_type("data.index.any")
                    .target("index", "name"),
            )
            .rule(Rule::delete("/v1/indexes/{name}").event_type("never.reached"));
        let c = rules.classify(&Method::POST, "/v1/indexes/a/import", None);
        assert_eq!(c.event_type(), "data.bulk.import");
        let c = rules.classify(&Method::DELETE, "/v1/indexes/a", None);
        assert_eq!(c.event_type(), "data.index.any");
        assert_eq!(c.route(), Some("/v1/indexes/{name}"));
        // Matched by axum's template even when the concrete path is not given to match.
        let c = rules.classify(&Method::GET, "/v1/indexes/a", Some("/v1/indexes/{index}"));
        assert_eq!(c.route(), Some("/v1/indexes/{index}"));
        assert_eq!(c.target(), Some(("index", "a")));
    }

    #[test]
    fn defaults() {
        let rules = Rules::new();
        let cases = [
            (Method::GET, "/v1/indexes", "/v1/indexes", "data.index.read"),
            (
                Method::POST,
                "/v1/indexes",
                "/v1/indexes",
                "data.index.create",
            ),
            (
                Method::PATCH,
                "/api/v2/policies/p1",
                "/api/v2/policies/{id}",
                "data.policy.update",
            ),
            (Method::DELETE, "/boxes/3", "/boxes/{id}", "data.box.delete"),
            (Method::POST, "/auth/login", "/auth/login", "auth.login"),
            (Method::POST, "/oauth/token", "/oauth/token", "auth.token"),
            (Method::GET, "/", "/", "data.root.read"),
            (
                Method::GET,
                "/2024/report",
                "/2024/report",
                "data.report.read",
            ),
            (Method::GET, "/2024", "/2024", "data.r2024.read"),
            (Method::OPTIONS, "/things", "/things", "data.thing.access"),
        ];
        for (m, p, template, t) in cases {
            let c = rules.classify(&m, p, Some(template));
            assert_eq!(c.event_type(), t, "{m} {p}");
            assert!(
                audit_core::EventType::new(&c.clone().finish(Outcome::Success, Some(200), None).0)
                    .is_ok()
            );
        }
        let mut login = rules.classify(&Method::POST, "/auth/login", Some("/auth/login"));
        assert_eq!(
            login.clone().finish(Outcome::Failure, Some(400), None).0,
            "auth.login.failure"
        );
        assert_eq!(
            login.clone().finish(Outcome::Success, Some(200), None).0,
            "auth.login.success"
        );
        let (t, cat, sev) = login.finish(Outcome::Denied, Some(401), None);
        assert_eq!(
            (t.as_str(), cat, sev),
            (
                "security.access.denied",
                Some(Category::Security),
                Severity::Warning
            )
        );
        let mut c = rules.classify(&Method::GET, "/x", None);
        assert_eq!(
            c.finish(Outcome::Failure, Some(429), None).0,
            "security.rate_limit.triggered"
        );
        // Without a template the client's path decides nothing.
        for (m, p) in [
            (Method::GET, "/wp-admin/setup.php"),
            (Method::POST, "/v1/login"),
            (Method::GET, "/4539148803436467"),
            (Method::GET, "/AKIAZAZ7KJX7A2OYCWK1"),
        ] {
            let mut c = rules.classify(&m, p, None);
            assert_eq!(c.event_type(), UNMATCHED, "{m} {p}");
            assert_eq!(c.target(), None);
            assert_eq!(c.finish(Outcome::Failure, Some(404), None).0, UNMATCHED);
        }
        assert_eq!(
            rules.classify(&Method::GET, "/healthz/", None).level(),
            Level::None
        );
        assert_eq!(
            Rules::new()
                .without_defaults()
                .classify(&Method::GET, "/x", None)
                .level(),
            Level::None
        );
    }
}
