//! Who may do what: tokens (issued, listed, revoked; only their hash is kept), the gate
//! every gRPC call passes (authentication, rate limits), the audit log of person-level
//! reads, and the Admin service over them.
//!
//! Tokens live in the data directory's `auth` store, so `daybook token issue --data-dir`
//! works before `serve` starts; a running server issues and revokes through `Admin`, and
//! a revocation takes effect at once (every copy of the token's [`Access`] sees it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::UnitKey;
use domain::access::{Access, AuditLog, NoAudit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use wire::pb;

/// Whether the server checks credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Required unless both gRPC and HTTP bind to loopback.
    Auto,
    Required,
    /// No checks: allowed on loopback only.
    Off,
}

impl std::str::FromStr for AuthMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "required" => Ok(Self::Required),
            "off" => Ok(Self::Off),
            _ => anyhow::bail!("auth: {text:?} is none of auto, required, off"),
        }
    }
}

impl AuthMode {
    /// Whether calls must carry a token, for a server bound to these addresses; an error
    /// for `off` on an address others can reach.
    pub fn required(self, addresses: &[SocketAddr]) -> anyhow::Result<bool> {
        let exposed = addresses.iter().find(|a| !a.ip().is_loopback());
        match (self, exposed) {
            (Self::Required, _) | (Self::Auto, Some(_)) => Ok(true),
            (Self::Off, Some(address)) => {
                anyhow::bail!("auth: off is allowed on loopback only, and {address} is not loopback")
            }
            (Self::Off | Self::Auto, None) => Ok(false),
        }
    }
}

/// A token as stored: its scope and the hash of its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    name: String,
    hash: String,
    post: Vec<String>,
    read: Vec<String>,
    persons: bool,
    admin: bool,
    issued_at: String,
    revoked_at: Option<String>,
}

impl TokenRecord {
    fn access(&self) -> Access {
        let read = self.read.iter().filter_map(|u| u.parse().ok()).collect();
        Access::new(self.name.clone(), self.post.clone(), read, self.persons, self.admin)
    }

    fn to_proto(&self) -> pb::TokenScope {
        pb::TokenScope {
            name: self.name.clone(),
            post: self.post.clone(),
            read: self.read.clone(),
            persons: self.persons,
            admin: self.admin,
            issued_at: self.issued_at.clone(),
            revoked_at: self.revoked_at.clone().unwrap_or_default(),
        }
    }
}

/// One person-level read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuditRecord {
    at: String,
    token: String,
    call: String,
    unit: String,
    detail: String,
}

/// The tokens and the audit log of one data directory.
#[derive(Clone)]
pub struct Tokens {
    db: store::Store,
    tokens: store::Tree,
    audit: store::Tree,
    /// Hash of a live token's secret → its access, shared by every call it makes.
    live: Arc<RwLock<HashMap<String, Access>>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// Opens the `auth` store of the data directory `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = store::Store::open(&dir.join("auth")).with_context(|| {
            format!("opening the token store in {} (a running server holds it: use --target)", dir.display())
        })?;
        let tokens = Self { tokens: db.open_tree("tokens")?, audit: db.open_tree("audit")?, db, live: Arc::default() };
        let mut live = HashMap::new();
        for record in tokens.records()? {
            if record.revoked_at.is_none() {
                live.insert(record.hash.clone(), record.access());
            }
        }
        *tokens.live.write().expect("lock") = live;
        Ok(tokens)
    }

    fn records(&self) -> anyhow::Result<Vec<TokenRecord>> {
        self.tokens.iter().map(|item| Ok(serde_json::from_slice(&item?.1)?)).collect()
    }

    /// Issues a token with `scope`; the secret, which only its holder keeps.
    pub fn issue(&self, scope: &pb::TokenScope) -> Result<String, Status> {
        self.issue_with(scope, None)
    }

    /// Issues a token with `scope` and the given secret, or a new random one: the same
    /// secret issued on every instance of a deployment over Kafka (each keeps its own
    /// tokens) lets a client present one token to all of them.
    pub fn issue_with(&self, scope: &pb::TokenScope, secret: Option<&str>) -> Result<String, Status> {
        let name = &scope.name;
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(Status::invalid_argument(format!("name: {name:?} must be letters, digits, '.', '_' or '-'")));
        }
        for unit in &scope.read {
            unit.parse::<UnitKey>().map_err(|e| Status::invalid_argument(format!("read: {unit:?}: {e}")))?;
        }
        if let Some(school) = scope.post.iter().find(|s| s.is_empty() || s.contains([':', '/'])) {
            return Err(Status::invalid_argument(format!("post: {school:?} is not a school code")));
        }
        let secret = match secret.map(str::trim) {
            Some(given) if given.len() < 32 || !given.is_ascii() => {
                return Err(Status::invalid_argument(
                    "secret: at least 32 ASCII characters (one `token issue` printed)",
                ));
            }
            Some(given) => given.to_owned(),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
                format!("dbk_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let record = TokenRecord {
            name: name.clone(),
            hash: hash(&secret),
            post: scope.post.clone(),
            read: scope.read.clone(),
            persons: scope.persons,
            admin: scope.admin,
            issued_at: now(),
            revoked_at: None,
        };
        let value = serde_json::to_vec(&record).map_err(|e| Status::internal(e.to_string()))?;
        let stored = self
            .tokens
            .compare_and_swap(name.as_bytes(), None::<&[u8]>, Some(value))
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if !stored {
            return Err(Status::already_exists(format!("name: a token named {name} exists (revoked or not)")));
        }
        self.tokens.flush().map_err(|e| Status::unavailable(e.to_string()))?;
        self.live.write().expect("lock").insert(record.hash.clone(), record.access());
        Ok(secret)
    }

    pub fn list(&self) -> Result<Vec<pb::TokenScope>, Status> {
        let records = self.records().map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(records.iter().map(TokenRecord::to_proto).collect())
    }

    pub fn revoke(&self, name: &str) -> Result<(), Status> {
        let stored = self.tokens.get(name.as_bytes()).map_err(|e| Status::unavailable(e.to_string()))?;
        let Some(stored) = stored else {
            return Err(Status::not_found(format!("name: no token named {name:?}")));
        };
        let mut record: TokenRecord = serde_json::from_slice(&stored).map_err(|e| Status::data_loss(e.to_string()))?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now());
            let value = serde_json::to_vec(&record).map_err(|e| Status::internal(e.to_string()))?;
            self.tokens.insert(name.as_bytes(), value).map_err(|e| Status::unavailable(e.to_string()))?;
            self.tokens.flush().map_err(|e| Status::unavailable(e.to_string()))?;
        }
        if let Some(access) = self.live.write().expect("lock").remove(&record.hash) {
            access.revoke();
        }
        Ok(())
    }

    /// The access of the live token named `name` (a client certificate's subject).
    pub fn named(&self, name: &str) -> Option<Access> {
        self.live.read().expect("lock").values().find(|a| a.name == name).cloned()
    }

    /// The access of a live token's secret.
    pub fn authenticate(&self, secret: &str) -> Option<Access> {
        self.live.read().expect("lock").get(&hash(secret)).cloned()
    }

    /// Notes a person-level read.
    pub fn audit(&self, access: &Access, call: &str, unit: &str, detail: &str) {
        let record = AuditRecord {
            at: now(),
            token: access.name.clone(),
            call: call.into(),
            unit: unit.into(),
            detail: detail.into(),
        };
        // Time first, so the scan is in time order; the id keeps two in one tick apart.
        let mut key = chrono::Utc::now().timestamp_micros().to_be_bytes().to_vec();
        key.extend(self.db.generate_id().unwrap_or_default().to_be_bytes());
        let stored = serde_json::to_vec(&record).map_err(anyhow::Error::from).and_then(|value| {
            self.audit.insert(key, value)?;
            Ok(())
        });
        if let Err(e) = stored {
            tracing::error!(error = %e, token = %access.name, call, "the audit log failed");
        }
    }

    pub fn audit_entries(&self, since: &str, limit: usize) -> Result<Vec<pb::AuditEntry>, Status> {
        let start = match since {
            "" => 0,
            text => chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| Status::invalid_argument(format!("since: {text:?} is not an RFC 3339 instant")))?
                .timestamp_micros(),
        };
        let mut out = Vec::new();
        for item in self.audit.range(start.to_be_bytes()..).take(limit) {
            let (_, value) = item.map_err(|e| Status::unavailable(e.to_string()))?;
            let r: AuditRecord = serde_json::from_slice(&value).map_err(|e| Status::data_loss(e.to_string()))?;
            out.push(pb::AuditEntry { at: r.at, token: r.token, call: r.call, unit: r.unit, detail: r.detail });
        }
        Ok(out)
    }
}

impl AuditLog for Tokens {
    fn record(&self, access: &Access, call: &str, unit: &str, detail: &str) {
        self.audit(access, call, unit, detail);
    }
}

/// Which kind of calls a gate guards, for its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Traffic {
    Posts,
    Reads,
}

/// Calls per second and token, by kind; 0 for no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub posts_per_second: f64,
    pub reads_per_second: f64,
    /// Streams (feeds, report lists, intake streams) a token may hold open at once.
    pub streams_per_token: usize,
}

/// A token bucket per token and kind: a second's worth of calls at once, refilled
/// continuously.
#[derive(Default)]
struct Buckets(Mutex<HashMap<(String, Traffic), (f64, Instant)>>);

impl Buckets {
    /// Takes one call from `name`'s bucket, or says how long until there is one.
    fn take(&self, name: &str, traffic: Traffic, per_second: f64) -> Result<(), Duration> {
        if per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.0.lock().expect("lock");
        let now = Instant::now();
        let (tokens, last) = buckets.entry((name.to_owned(), traffic)).or_insert((per_second, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(per_second);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }
}

/// What every call passes: who it is (a bearer token, or anyone when access is not
/// checked), and whether its token has calls left this second. It leaves the caller's
/// [`Access`] in the request's extensions for the service to consult.
#[derive(Clone)]
pub struct Gate {
    tokens: Option<Tokens>,
    limits: RateLimits,
    buckets: Arc<Buckets>,
}

impl Gate {
    /// `tokens` is `None` when access is not checked.
    pub fn new(tokens: Option<Tokens>, limits: RateLimits) -> Self {
        Self { tokens, limits, buckets: Arc::default() }
    }

    /// Where the services note person-level reads.
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        match &self.tokens {
            Some(tokens) => Arc::new(tokens.clone()),
            None => Arc::new(NoAudit),
        }
    }

    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    /// The interceptor of a service whose calls are `traffic`.
    pub fn for_traffic(&self, traffic: Traffic) -> GateFor {
        GateFor { gate: self.clone(), traffic }
    }

    /// The caller's access, from the `authorization` metadata, or else from the client
    /// certificate's subject CN (mTLS), which names a live token.
    pub fn identify(&self, metadata: &MetadataMap, client: Option<&str>) -> Result<Access, Status> {
        let Some(tokens) = &self.tokens else { return Ok(Access::everything()) };
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let Some(secret) = header.strip_prefix("Bearer ") else {
            if let Some(access) = client.and_then(|name| tokens.named(name)) {
                return Ok(access);
            }
            return Err(Status::unauthenticated(
                "authorization: this server needs `Bearer <token>` metadata, or a client certificate naming a token",
            ));
        };
        tokens
            .authenticate(secret.trim())
            .ok_or_else(|| Status::unauthenticated("authorization: the token is not valid (unknown or revoked)"))
    }
}

#[derive(Clone)]
pub struct GateFor {
    gate: Gate,
    traffic: Traffic,
}

impl tonic::service::Interceptor for GateFor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let client = request.peer_certs().and_then(|certs| crate::tls::client_name(&certs));
        let access = self.gate.identify(request.metadata(), client.as_deref())?;
        let per_second = match self.traffic {
            Traffic::Posts => self.gate.limits.posts_per_second,
            Traffic::Reads => self.gate.limits.reads_per_second,
        };
        if self.gate.tokens.is_some()
            && let Err(wait) = self.gate.buckets.take(&access.name, self.traffic, per_second)
        {
            let mut status = Status::resource_exhausted(format!(
                "rate limit: token {} may make {per_second} {} calls per second; retry in {} ms",
                access.name,
                if self.traffic == Traffic::Posts { "intake" } else { "read" },
                wait.as_millis() + 1
            ));
            if let Ok(value) = (wait.as_millis() + 1).to_string().parse() {
                status.metadata_mut().insert("retry-after-ms", value);
            }
            return Err(status);
        }
        let mut access = access;
        if self.gate.tokens.is_some() {
            access.max_streams = self.gate.limits.streams_per_token;
        }
        request.extensions_mut().insert(access);
        Ok(request)
    }
}

/// Tokens and the audit log over gRPC, for tokens with the admin right.
pub struct AdminService {
    tokens: Option<Tokens>,
}

impl AdminService {
    pub fn new(gate: &Gate) -> Self {
        Self { tokens: gate.tokens.clone() }
    }

    fn tokens<T>(&self, request: &Request<T>) -> Result<&Tokens, Status> {
        let access = wire::access_of(request)?;
        if !access.admin {
            return Err(Status::permission_denied(format!("token {} has no admin right", access.name)));
        }
        self.tokens.as_ref().ok_or_else(|| {
            Status::failed_precondition("this server does not check access (auth off): it has no tokens")
        })
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let tokens = self.tokens(&request)?;
        let scope = request.into_inner().scope.unwrap_or_default();
        Ok(Response::new(pb::IssueTokenResponse { token: tokens.issue(&scope)? }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        Ok(Response::new(pb::ListTokensResponse { tokens: self.tokens(&request)?.list()? }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let tokens = self.tokens(&request)?;
        tokens.revoke(&request.into_inner().name)?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let tokens = self.tokens(&request)?;
        let request = request.into_inner();
        let limit = if request.limit == 0 { 1000 } else { request.limit as usize };
        Ok(Response::new(pb::ListAuditResponse { entries: tokens.audit_entries(&request.since, limit)? }))
    }
}
