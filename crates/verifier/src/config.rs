//! The verifier's configuration: flags, `TESSERA_*` variables, and defaults
//! that run as-is beside a default issuer.

use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

fn duration(text: &str) -> Result<Duration, String> {
    tessera_core::duration::parse(text)
}

/// The verifier's default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50052";

/// The feed followed by default: the issuer's default address.
pub const DEFAULT_FEED: &str = "http://127.0.0.1:50051";

/// Everything the verifier can be told.
#[derive(Clone, Args)]
pub struct VerifierConfig {
    /// Address to listen on for gRPC.
    #[arg(long, env = "TESSERA_VERIFIER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The issuers' database, read directly (a single host, `tessera dev`):
    /// keys, revocation events, and token uses written back. Unset (the
    /// default), the verifier takes everything from its upstream feed and
    /// needs no database credentials. With both, the feed must be this
    /// store's log, or the verifier refuses to serve.
    #[arg(long, env = "DATABASE_URL", default_value = "")]
    pub database_url: String,

    /// PostgreSQL schema to use instead of `public`.
    #[arg(long, env = "TESSERA_DB_SCHEMA")]
    pub db_schema: Option<String>,

    /// Maximum pooled database connections.
    #[arg(long, env = "TESSERA_VERIFIER_DB_MAX_CONNECTIONS", default_value_t = 4)]
    pub db_max_connections: u32,

    /// How often new revocation events are fetched.
    #[arg(long, env = "TESSERA_SYNC_INTERVAL", default_value = "250ms", value_parser = duration_ms)]
    pub sync_interval: Duration,

    /// Past this long without a successful sync, every check answers STALE
    /// and health reports NOT_SERVING (fail closed).
    #[arg(long, env = "TESSERA_MAX_STALENESS", default_value = "30s", value_parser = duration)]
    pub max_staleness: Duration,

    /// How often the published keys are reloaded (an unknown `kid` also
    /// triggers a reload, at most once per `--key-refresh-min-interval`).
    #[arg(long, env = "TESSERA_KEY_REFRESH_INTERVAL", default_value = "30s", value_parser = duration)]
    pub key_refresh_interval: Duration,

    /// Least time between two reloads caused by unknown key ids.
    #[arg(long, env = "TESSERA_KEY_REFRESH_MIN_INTERVAL", default_value = "1s", value_parser = duration_ms)]
    pub key_refresh_min_interval: Duration,

    /// Clock skew allowed when checking a token's time window.
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "60s", value_parser = duration)]
    pub clock_leeway: Duration,

    /// Issuer names (`iss`) to accept, repeated or comma-separated; by
    /// default the names the issuers sharing this store record on their
    /// signing keys.
    #[arg(
        long = "trusted-issuer",
        env = "TESSERA_TRUSTED_ISSUERS",
        value_delimiter = ','
    )]
    pub trusted_issuers: Vec<String>,

    /// Tokens whose signatures are remembered; a repeated token skips the
    /// signature check (never the time, revocation or grant checks).
    #[arg(long, env = "TESSERA_SIGNATURE_CACHE_SIZE", default_value_t = 100_000)]
    pub signature_cache_size: usize,

    /// How often the last-used times, counts and callers of the tokens
    /// answered OK are merged into the store (`off` or `0`: not tracked).
    /// What was counted since the last flush is lost if the process dies.
    #[arg(long, env = "TESSERA_USAGE_FLUSH_INTERVAL", default_value = "60s", value_parser = duration_or_off)]
    pub usage_flush_interval: Duration,

    /// Most tokens whose use is held between flushes (about 70 bytes
    /// each); beyond it uses are dropped and counted.
    #[arg(long, env = "TESSERA_USAGE_MAX_TOKENS", default_value_t = 1_000_000)]
    pub usage_max_tokens: usize,

    /// Proxies (IP addresses, repeated or comma-separated) whose
    /// `X-Forwarded-For` names the real caller recorded as a token's last
    /// caller; any other peer is recorded as itself.
    #[arg(
        long = "trusted-proxy",
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// The upstreams (`http(s)://host:port`, issuers or relays,
    /// comma-separated and tried in turn) whose revocation feed is
    /// followed instead of polling the store; `off` polls only. While no
    /// upstream can be followed, the store is polled every
    /// `--sync-interval`. A feed whose log is not this verifier's store's
    /// makes the verifier refuse to serve.
    #[arg(long, env = "TESSERA_REVOCATION_FEED", default_value = DEFAULT_FEED)]
    pub revocation_feed: String,

    /// The secret the issuer's `--feed-secret` names, sent to follow its
    /// feed (a feed admits no one without it).
    #[arg(long, env = "TESSERA_FEED_SECRET", hide_env_values = true)]
    pub feed_secret: Option<String>,

    /// The name this verifier gives itself to its upstreams, for their
    /// logs; by default `verifier@<listen address>`.
    #[arg(long, env = "TESSERA_VERIFIER_NAME")]
    pub name: Option<String>,

    /// CA certificates (PEM) an `https://` upstream's certificate must
    /// chain to; without it, the system's trusted roots.
    #[arg(long, env = "TESSERA_FEED_CA")]
    pub feed_ca: Option<std::path::PathBuf>,

    /// A client certificate (PEM) for `https://` upstreams that require
    /// mTLS, with `--feed-client-key`.
    #[arg(long, env = "TESSERA_FEED_CLIENT_CERT")]
    pub feed_client_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of `--feed-client-cert`.
    #[arg(long, env = "TESSERA_FEED_CLIENT_KEY")]
    pub feed_client_key: Option<std::path::PathBuf>,

    /// Also serve the revocation feed (`WatchRevocations`) to other
    /// verifiers: a relay, forwarding what its own upstream sends as it
    /// arrives (with no store of its own), so a tree of relays spreads one
    /// issuer's log to many regions. Without an upstream it serves its
    /// store's log, read every 100 ms. Its followers present
    /// `--feed-secret` (without one it admits no one).
    #[arg(long, env = "TESSERA_SERVE_FEED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub serve_feed: bool,

    /// Most events a relay keeps in memory (about 440 bytes each) for its
    /// nearly current followers; those further behind are served from its
    /// upstream.
    #[arg(long, env = "TESSERA_RELAY_WINDOW", default_value_t = tessera_feed::WINDOW)]
    pub relay_window: usize,

    /// Largest request accepted, in bytes; larger ones are refused by the transport.
    #[arg(long, env = "TESSERA_VERIFIER_MAX_MESSAGE_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Longest time one request may run.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Most requests served at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_REQUESTS", default_value_t = 4096)]
    pub max_concurrent_requests: usize,

    /// Where Prometheus metrics are served (`GET /metrics`); off when unset.
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Where HTTP forward authentication is served (`/auth`, for nginx
    /// `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`; see
    /// docs/gateways.md); off when unset.
    #[arg(long, env = "TESSERA_FORWARD_AUTH_LISTEN")]
    pub forward_auth_listen: Option<SocketAddr>,

    /// A route rules file (TOML) mapping methods and paths to the resource
    /// and action proxied requests must hold (ext_authz and forward auth);
    /// requests no route matches are refused. Without one, a proxy names
    /// the resource and action per route, or only validity is checked.
    #[arg(long, env = "TESSERA_ROUTE_RULES")]
    pub route_rules: Option<std::path::PathBuf>,

    /// Also read FME's `?fmetoken=<token>` query parameter in proxied
    /// requests that carry no `Authorization` header. Off by default: URLs
    /// end up in logs. ext_authz answers then remove it from the upstream
    /// request.
    #[arg(long, env = "TESSERA_FMETOKEN_QUERY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub fmetoken_query: bool,

    /// ext_authz answers that let a request through also remove its
    /// `authorization` header, so the upstream never sees the token.
    #[arg(long, env = "TESSERA_STRIP_CREDENTIAL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strip_credential: bool,

    /// After SIGTERM, how long calls in flight may take to finish.
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// After SIGTERM, how long to keep serving while health says
    /// NOT_SERVING, so probes and load balancers checking on new
    /// connections stop routing here before the listener closes. Keep it
    /// (plus the grace period) inside the pod's termination grace period.
    #[arg(long, env = "TESSERA_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration)]
    pub shutdown_delay: Duration,

    /// The server certificate chain (PEM): with `--tls-key`, serve TLS.
    #[arg(long, env = "TESSERA_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The server private key (PEM).
    #[arg(long, env = "TESSERA_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// CA certificates (PEM) client certificates must chain to: require mTLS.
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

/// Like [`duration_ms`], and `off` (zero).
fn duration_or_off(text: &str) -> Result<Duration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    duration_ms(text)
}

/// Like [`duration`], but also reads milliseconds (`250ms`).
fn duration_ms(text: &str) -> Result<Duration, String> {
    tessera_core::duration::parse_ms(text)
}

/// Shows no secret: the database URL's password is redacted.
impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("listen", &self.listen)
            .field("database_url", &tessera_store::redact(&self.database_url))
            .field("db_schema", &self.db_schema)
            .field("trusted_issuers", &self.trusted_issuers)
            .finish_non_exhaustive()
    }
}

impl VerifierConfig {
    /// The store to read, when one is configured.
    pub fn store_url(&self) -> Option<&str> {
        let url = self.database_url.trim();
        (!url.is_empty()).then_some(url)
    }

    /// The name given to upstreams.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("verifier@{}", self.listen))
    }

    /// The feed to follow, unless it is `off`.
    pub fn feed(&self) -> Option<&str> {
        let feed = self.revocation_feed.trim();
        (!feed.is_empty() && !feed.eq_ignore_ascii_case("off")).then_some(feed)
    }

    /// The defaults (the feed off: embedders and tests name theirs), listening on `listen` and reading `database_url`.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            db_schema: None,
            db_max_connections: 4,
            sync_interval: Duration::from_millis(250),
            max_staleness: Duration::from_secs(30),
            key_refresh_interval: Duration::from_secs(30),
            key_refresh_min_interval: Duration::from_secs(1),
            clock_leeway: Duration::from_secs(60),
            trusted_issuers: Vec::new(),
            signature_cache_size: 100_000,
            usage_flush_interval: Duration::from_secs(60),
            usage_max_tokens: 1_000_000,
            trusted_proxies: Vec::new(),
            revocation_feed: "off".into(),
            feed_secret: None,
            name: None,
            feed_ca: None,
            feed_client_cert: None,
            feed_client_key: None,
            serve_feed: false,
            relay_window: tessera_feed::WINDOW,
            max_message_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            max_concurrent_requests: 4096,
            metrics_listen: None,
            forward_auth_listen: None,
            route_rules: None,
            fmetoken_query: false,
            strip_credential: false,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::from_secs(5),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds_and_plain_durations_parse() {
        assert_eq!(
            super::duration_ms("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            super::duration_ms("2s"),
            Ok(std::time::Duration::from_secs(2))
        );
        assert!(super::duration_ms("fast").is_err());
        assert_eq!(super::duration_or_off("off"), Ok(std::time::Duration::ZERO));
    }
}
