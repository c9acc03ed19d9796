//! The upstreams a verifier follows (`--revocation-feed URL[,URL…]`,
//! issuers or relays, tried in turn), checked at start: a URL the verifier
//! cannot speak to stops the start with what to change, rather than
//! leaving it polling the store without a word. Also the calls made to
//! them besides following ([`UpstreamClient`]).

use crate::config::VerifierConfig;
use crate::error::VerifierError;
use std::path::Path;
use std::time::Duration;
use tessera_proto::v1::{self, revocation_feed_service_client::RevocationFeedServiceClient};
use tessera_store::usage::TokenUse;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// One upstream feed.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As configured, for logs.
    pub url: String,
    pub endpoint: Endpoint,
}

fn startup(message: String) -> VerifierError {
    VerifierError::Startup(message)
}

fn read_pem(what: &str, flag: &str, path: &Path, marker: &str) -> Result<Vec<u8>, VerifierError> {
    let pem = std::fs::read(path).map_err(|e| {
        startup(format!(
            "cannot read the {what} {} ({flag}): {e}",
            path.display()
        ))
    })?;
    // tonic reads the PEM only when it first connects: look now, so a
    // wrong file stops the start instead of every later connection.
    if !String::from_utf8_lossy(&pem).contains(marker) {
        return Err(startup(format!(
            "the {what} {} ({flag}) holds no PEM `{marker}` block",
            path.display()
        )));
    }
    Ok(pem)
}

/// The client TLS settings for `https://` upstreams: `--feed-ca` (or the
/// system's roots), and a client certificate where the issuer asks for one.
fn tls(config: &VerifierConfig) -> Result<ClientTlsConfig, VerifierError> {
    let mut tls = match &config.feed_ca {
        Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem(
            "feed CA",
            "--feed-ca",
            ca,
            "BEGIN CERTIFICATE",
        )?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    match (&config.feed_client_cert, &config.feed_client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read_pem(
                    "feed client certificate",
                    "--feed-client-cert",
                    cert,
                    "BEGIN CERTIFICATE",
                )?,
                read_pem("feed client key", "--feed-client-key", key, "PRIVATE KEY")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(startup(
                "a feed client certificate needs both --feed-client-cert and --feed-client-key"
                    .into(),
            ));
        }
    }
    Ok(tls)
}

/// Every configured upstream, ready to connect to; none when the feed is
/// off. Plain `http://` with TLS settings given is refused: the operator
/// asked for TLS and would not get it.
pub fn upstreams(config: &VerifierConfig) -> Result<Vec<Upstream>, VerifierError> {
    let Some(list) = config.feed() else {
        return Ok(Vec::new());
    };
    let tls_asked = config.feed_ca.is_some() || config.feed_client_cert.is_some();
    let mut out = Vec::new();
    for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| {
            startup(format!(
                "the revocation feed {url:?} is not a URL ({e}): give http(s)://host:port"
            ))
        })?;
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let endpoint = match endpoint.uri().scheme_str() {
            Some("https") => endpoint.tls_config(tls(config)?).map_err(|e| {
                startup(format!("cannot use TLS for the revocation feed {url}: {e}"))
            })?,
            Some("http") if tls_asked => {
                return Err(startup(format!(
                    "the revocation feed {url} is plain http:// but --feed-ca or \
                     --feed-client-cert is set: use https://, or drop the TLS flags"
                )));
            }
            Some("http") => endpoint,
            _ => {
                return Err(startup(format!(
                    "the revocation feed {url} is neither http:// nor https://: give \
                     http(s)://host:port, or `off`"
                )));
            }
        };
        out.push(Upstream {
            url: url.to_owned(),
            endpoint,
        });
    }
    Ok(out)
}

/// Adds what every call to an upstream carries: the feed secret and the
/// name this verifier gives itself.
pub fn authorize<T>(
    message: T,
    secret: Option<&str>,
    name: &str,
) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    if let Some(secret) = secret {
        let value = format!("Bearer {secret}")
            .parse()
            .map_err(|_| "the feed secret is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    if let Ok(value) = name.parse() {
        request.metadata_mut().insert("x-tessera-follower", value);
    }
    Ok(request)
}

/// Calls to the upstreams other than following: reporting token uses,
/// and, for a relay, the events its own window does not hold. Each call
/// tries the upstreams in turn.
pub struct UpstreamClient {
    channels: Vec<(String, Channel)>,
    secret: Option<String>,
    name: String,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("upstreams", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// How long one backfill from upstream may wait for a message.
const BACKFILL_WAIT: Duration = Duration::from_secs(5);

impl UpstreamClient {
    pub fn new(upstreams: &[Upstream], secret: Option<String>, name: String) -> Self {
        let channels = upstreams
            .iter()
            .map(|u| (u.url.clone(), u.endpoint.connect_lazy()))
            .collect();
        Self {
            channels,
            secret,
            name,
        }
    }

    fn client(&self, channel: &Channel) -> RevocationFeedServiceClient<Channel> {
        RevocationFeedServiceClient::new(channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Reports one chunk of token uses to the first upstream that takes it.
    pub async fn report(&self, uses: &[TokenUse]) -> Result<u64, String> {
        let mut last = String::from("no upstream is configured");
        for (url, channel) in &self.channels {
            let message = v1::ReportUsageRequest {
                uses: uses.iter().map(tessera_feed::use_to_wire).collect(),
            };
            let request = authorize(message, self.secret.as_deref(), &self.name)?;
            match self.client(channel).report_usage(request).await {
                Ok(reply) => return Ok(u64::try_from(reply.into_inner().merged).unwrap_or(0)),
                Err(status) => last = format!("{url}: {:?}: {}", status.code(), status.message()),
            }
        }
        Err(last)
    }

    /// The events after `after`, as far as one upstream message or `limit`
    /// events take them, from the first upstream that answers.
    async fn events_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<(Vec<v1::RevocationEvent>, i64), String> {
        let mut last = String::from("no upstream is configured");
        for (url, channel) in &self.channels {
            let request = authorize(
                v1::WatchRevocationsRequest { after_seq: after },
                self.secret.as_deref(),
                &self.name,
            )?;
            let mut stream = match self.client(channel).watch_revocations(request).await {
                Ok(reply) => reply.into_inner(),
                Err(status) => {
                    last = format!("{url}: {:?}: {}", status.code(), status.message());
                    continue;
                }
            };
            let mut events = Vec::new();
            let mut position = after;
            // Messages until one with events, a page's worth, or the end.
            loop {
                let message = match tokio::time::timeout(BACKFILL_WAIT, stream.message()).await {
                    Ok(Ok(Some(message))) => message,
                    Ok(Ok(None)) => break,
                    Ok(Err(status)) => return Err(format!("{url}: {}", status.message())),
                    Err(_) => return Err(format!("{url}: no message within {BACKFILL_WAIT:?}")),
                };
                if message.after_seq != position {
                    return Err(format!("{url}: the upstream skipped events"));
                }
                position = message.last_seq;
                let caught_up = message.caught_up;
                events.extend(message.events);
                if !events.is_empty() || caught_up || events.len() as u64 >= limit {
                    break;
                }
            }
            return Ok((events, position));
        }
        Err(last)
    }
}

impl crate::usage::Sink for UpstreamClient {
    async fn merge(&self, uses: &[TokenUse]) -> Result<(), String> {
        self.report(uses).await.map(|_| ())
    }
}

#[tonic::async_trait]
impl tessera_feed::Source for UpstreamClient {
    async fn backfill(
        &self,
        after: i64,
        _up_to: i64,
        _now: i64,
        limit: u64,
    ) -> Result<(Vec<v1::RevocationEvent>, i64), String> {
        self.events_after(after, limit).await
    }

    async fn report(&self, uses: Vec<v1::TokenUse>) -> Result<u64, tonic::Status> {
        let uses: Vec<TokenUse> = uses
            .into_iter()
            .filter_map(tessera_feed::use_from_wire)
            .collect();
        UpstreamClient::report(self, &uses).await.map_err(|e| {
            tonic::Status::unavailable(format!("the relay's upstream did not take the uses: {e}"))
        })
    }
}

/// The whole cause chain of a connection error: tonic's own text is only
/// "transport error", and the operator needs the certificate's complaint.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(feed: &str) -> VerifierConfig {
        let mut config =
            VerifierConfig::new("127.0.0.1:0".parse().expect("address"), "sqlite::memory:");
        config.revocation_feed = feed.into();
        config
    }

    #[test]
    fn upstreams_are_read_in_turn_and_bad_ones_stop_the_start() {
        assert!(upstreams(&config("off")).expect("off").is_empty());
        let two = upstreams(&config("http://a:1, http://b:2")).expect("two");
        assert_eq!(
            two.iter().map(|u| u.url.as_str()).collect::<Vec<_>>(),
            ["http://a:1", "http://b:2"]
        );
        let err = upstreams(&config("ftp://a:1")).expect_err("a scheme it cannot speak");
        assert!(
            err.to_string().contains("neither http:// nor https://"),
            "{err}"
        );
        let mut asked = config("http://a:1");
        asked.feed_ca = Some("/nonexistent/ca.pem".into());
        let err = upstreams(&asked).expect_err("TLS asked over plain http");
        assert!(err.to_string().contains("use https://"), "{err}");
        asked.revocation_feed = "https://a:1".into();
        let err = upstreams(&asked).expect_err("a CA file that is not there");
        assert!(err.to_string().contains("--feed-ca"), "{err}");
        let mut half = config("https://a:1");
        half.feed_client_key = Some("/k.pem".into());
        assert!(upstreams(&half).is_err(), "a key without a certificate");
    }
}
