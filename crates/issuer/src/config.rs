//! The issuer's configuration: flags, `TESSERA_*` variables, and defaults
//! that run as-is.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(text: &str) -> Result<Duration, String> {
    tessera_core::duration::parse(text)
}

/// Where the issuer keeps its SQLite database when no URL is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tessera-data/tessera.db?mode=rwc";

/// The issuer's default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Everything the issuer can be told.
#[derive(Clone, Args)]
pub struct IssuerConfig {
    /// Address to listen on for gRPC.
    #[arg(long, env = "TESSERA_ISSUER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH?mode=rwc` (the default, created on first
    /// start) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Maximum pooled database connections.
    #[arg(long, env = "TESSERA_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// PostgreSQL schema to use instead of `public`.
    #[arg(long, env = "TESSERA_DB_SCHEMA")]
    pub db_schema: Option<String>,

    /// The key-encryption key (base64 of 32 bytes) sealing signing keys at rest.
    #[arg(long, env = "TESSERA_KEK", hide_env_values = true)]
    pub kek: Option<String>,

    /// A file holding the key-encryption key. With neither this nor
    /// `--kek`, a SQLite issuer generates one beside its database file.
    #[arg(long, env = "TESSERA_KEK_FILE")]
    pub kek_file: Option<PathBuf>,

    /// Password of the `admin` user created on first start; generated and
    /// printed once to stderr when unset.
    #[arg(long, env = "TESSERA_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// A permission catalog file (TOML: resource types, their actions and
    /// the dependencies between grants) replacing the built-in one. An
    /// invalid catalog stops the start.
    #[arg(long, env = "TESSERA_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// The `iss` claim of every token.
    #[arg(long, env = "TESSERA_ISSUER_NAME", default_value = "tessera")]
    pub issuer_name: String,

    /// Lifetime of an API token created without an expiry.
    #[arg(long, env = "TESSERA_DEFAULT_TOKEN_LIFETIME", default_value = "7d", value_parser = duration)]
    pub default_token_lifetime: Duration,

    /// Longest lifetime an API token may be given.
    #[arg(long, env = "TESSERA_MAX_TOKEN_LIFETIME", default_value = "365d", value_parser = duration)]
    pub max_token_lifetime: Duration,

    /// Lifetime of a web login session.
    #[arg(long, env = "TESSERA_WEB_SESSION_LIFETIME", default_value = "30m", value_parser = duration)]
    pub web_session_lifetime: Duration,

    /// Lifetime of a token-service session when none is asked for.
    #[arg(long, env = "TESSERA_TOKEN_SERVICE_SESSION_LIFETIME", default_value = "5m", value_parser = duration)]
    pub token_service_session_lifetime: Duration,

    /// Lifetime of an API login session.
    #[arg(long, env = "TESSERA_API_SESSION_LIFETIME", default_value = "1h", value_parser = duration)]
    pub api_session_lifetime: Duration,

    /// Longest lifetime a session may ask for.
    #[arg(long, env = "TESSERA_MAX_SESSION_LIFETIME", default_value = "1d", value_parser = duration)]
    pub max_session_lifetime: Duration,

    /// Longest overlap a rotation may give the previous secret.
    #[arg(long, env = "TESSERA_MAX_ROTATION_OVERLAP", default_value = "24h", value_parser = duration)]
    pub max_rotation_overlap: Duration,

    /// How long a new signing key is published before it signs
    /// (`RotateKey` without `immediate`, and scheduled rotations).
    #[arg(long, env = "TESSERA_KEY_ACTIVATION_DELAY", default_value = "1h", value_parser = duration)]
    pub key_activation_delay: Duration,

    /// Rotate the signing key by itself this often. Unset or `0s`: never.
    #[arg(long, env = "TESSERA_KEY_ROTATION_INTERVAL", value_parser = duration)]
    pub key_rotation_interval: Option<Duration>,

    /// How long expired session tokens are kept before the clean-up task
    /// deletes them.
    #[arg(long, env = "TESSERA_SESSION_RETENTION", default_value = "7d", value_parser = duration)]
    pub session_retention: Duration,

    /// How often the clean-up task runs (expired sessions, revocation events
    /// no token needs, unpublished keys, scheduled key rotation).
    #[arg(long, env = "TESSERA_CLEANUP_INTERVAL", default_value = "10m", value_parser = duration)]
    pub cleanup_interval: Duration,

    /// Clock skew allowed when checking a token's time window.
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "60s", value_parser = duration)]
    pub clock_leeway: Duration,

    /// How often the store is checked for health reporting.
    #[arg(long, env = "TESSERA_HEALTH_INTERVAL", default_value = "5s", value_parser = duration)]
    pub health_interval: Duration,

    /// Longest time one request may run before it is cancelled.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Most requests served at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,

    /// Where Prometheus metrics are served (`GET /metrics`); off when unset.
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Memory, in MiB, that password hashes running at once may hold (each
    /// argon2id hash holds 19 MiB): bounds concurrent logins; beyond it a
    /// login is answered RESOURCE_EXHAUSTED at once. The default suits a
    /// 512 MiB container.
    #[arg(long, env = "TESSERA_PASSWORD_HASH_MEMORY", default_value_t = 128)]
    pub password_hash_memory_mib: u64,

    /// Failed sign-ins allowed per user name and source address before each
    /// next attempt must wait (1 s, doubling).
    #[arg(long, env = "TESSERA_LOGIN_FREE_FAILURES", default_value_t = 3)]
    pub login_free_failures: u32,

    /// The longest wait failed sign-ins impose.
    #[arg(long, env = "TESSERA_LOGIN_MAX_DELAY", default_value = "15m", value_parser = duration)]
    pub login_max_delay: Duration,

    /// Proxies (IP addresses) whose `x-forwarded-for` names the real client,
    /// repeated or comma-separated. Without them the source of a sign-in is
    /// the connection's peer address.
    #[arg(
        long = "trusted-proxy",
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// After SIGTERM, how long calls in flight may take to finish.
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// After SIGTERM, how long to keep serving while health says
    /// NOT_SERVING, so probes and load balancers checking on new
    /// connections stop routing here before the listener closes. Keep it
    /// (plus the grace period) inside the pod's termination grace period.
    #[arg(long, env = "TESSERA_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration)]
    pub shutdown_delay: Duration,

    /// The secret verifiers present (`authorization: Bearer <secret>`) to
    /// follow the revocation feed. Without one the feed admits no one
    /// (verifiers that read a store poll it instead); `tessera dev` makes
    /// one up.
    #[arg(long, env = "TESSERA_FEED_SECRET", hide_env_values = true)]
    pub feed_secret: Option<String>,

    /// How often the revocation feed reads the log for events other issuer
    /// replicas committed (this process's own commits wake it at once).
    #[arg(long, env = "TESSERA_FEED_POLL_INTERVAL", default_value = "100ms", value_parser = tessera_core::duration::parse_ms)]
    pub feed_poll_interval: Duration,

    /// How often a follower with nothing new hears the feed's latest
    /// sequence number, so it knows it is fresh.
    #[arg(long, env = "TESSERA_FEED_HEARTBEAT", default_value = "1s", value_parser = tessera_core::duration::parse_ms)]
    pub feed_heartbeat: Duration,

    /// A follower of the revocation feed that takes no message for this
    /// long is cut off (it reconnects from where it was), so a slow one
    /// costs at most its queue of four messages.
    #[arg(long, env = "TESSERA_FEED_SLOW_FOLLOWER", default_value = "10s", value_parser = tessera_core::duration::parse_ms)]
    pub feed_slow_follower: Duration,

    /// Where FME's own HTTP endpoints are served (`/fmetoken/generate`,
    /// `/fmerest/v3/tokens`, `/fmeapiv4/tokens`, `/fmeinfo/version`, the
    /// health checks), translated onto the same services as gRPC; off when
    /// unset. Plain HTTP: put a TLS-terminating proxy in front of it
    /// outside a single host (passwords travel in its requests).
    #[arg(long, env = "TESSERA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,

    /// Whether the HTTP face takes a token from FME's `fmetoken` query
    /// parameter (`?fmetoken=<token>`), as FME does. A token in a URL ends
    /// up in proxies' and browsers' histories: turn it off
    /// (`--fmetoken-query=false`) when no client needs it.
    #[arg(
        long,
        env = "TESSERA_FMETOKEN_QUERY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub fmetoken_query: bool,

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

/// Shows no secret: the KEK and the admin password are left out and the
/// database URL's password is redacted.
impl std::fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("listen", &self.listen)
            .field("http_listen", &self.http_listen)
            .field("database_url", &tessera_store::redact(&self.database_url))
            .field("db_schema", &self.db_schema)
            .field("kek_file", &self.kek_file)
            .field("issuer_name", &self.issuer_name)
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

impl IssuerConfig {
    /// The defaults, listening on `listen` with the database at `database_url`.
    /// What tests and embedders start from.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            db_max_connections: 10,
            db_schema: None,
            kek: None,
            kek_file: None,
            admin_password: None,
            catalog: None,
            issuer_name: "tessera".into(),
            default_token_lifetime: Duration::from_secs(7 * 86_400),
            max_token_lifetime: Duration::from_secs(365 * 86_400),
            web_session_lifetime: Duration::from_secs(30 * 60),
            token_service_session_lifetime: Duration::from_secs(5 * 60),
            api_session_lifetime: Duration::from_secs(3_600),
            max_session_lifetime: Duration::from_secs(86_400),
            max_rotation_overlap: Duration::from_secs(86_400),
            key_activation_delay: Duration::from_secs(3_600),
            key_rotation_interval: None,
            session_retention: Duration::from_secs(7 * 86_400),
            cleanup_interval: Duration::from_secs(600),
            clock_leeway: Duration::from_secs(60),
            health_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            metrics_listen: None,
            password_hash_memory_mib: 128,
            login_free_failures: 3,
            login_max_delay: Duration::from_secs(900),
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::from_secs(5),
            feed_secret: None,
            feed_poll_interval: Duration::from_millis(100),
            feed_heartbeat: Duration::from_secs(1),
            feed_slow_follower: Duration::from_secs(10),
            http_listen: None,
            fmetoken_query: true,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }

    /// The longest lifetime any token may have: how long a revocation about
    /// every token of a user must be kept, and a retired key published.
    pub fn longest_token_lifetime(&self) -> Duration {
        self.max_token_lifetime.max(self.max_session_lifetime)
    }

    /// The SQLite file the database URL names, if it names one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        tessera_store::sqlite_path(&self.database_url).map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_defaults_are_the_new_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: IssuerConfig,
        }
        let parsed = Cli::try_parse_from(["tessera-issuer"])
            .expect("defaults parse")
            .config;
        let built = IssuerConfig::new(parsed.listen, parsed.database_url.clone());
        assert_eq!(parsed.max_rotation_overlap, built.max_rotation_overlap);
        assert_eq!(parsed.key_activation_delay, built.key_activation_delay);
        assert_eq!(parsed.key_rotation_interval, built.key_rotation_interval);
        assert_eq!(parsed.session_retention, built.session_retention);
        assert_eq!(parsed.cleanup_interval, built.cleanup_interval);
        assert_eq!(parsed.http_listen, built.http_listen);
        assert_eq!(parsed.fmetoken_query, built.fmetoken_query);
        assert_eq!(
            built.longest_token_lifetime(),
            Duration::from_secs(365 * 86_400)
        );
    }

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let path = |url: &str| IssuerConfig::new(addr, url).sqlite_path();
        assert_eq!(
            path(DEFAULT_DATABASE_URL),
            Some("tessera-data/tessera.db".into())
        );
        assert_eq!(
            path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db".into())
        );
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("postgres://postgres@localhost/test"), None);
    }
}
