//! Where a call comes from: the connection's peer, or, when that peer is a
//! trusted proxy, the nearest untrusted address in its `X-Forwarded-For`.
//! The issuer throttles sign-ins by it; the verifier records it as a
//! token's last caller.

use std::net::IpAddr;

/// The caller's address. `forwarded` are the `X-Forwarded-For` values in
/// the order they arrived (each may list several hops, comma-separated);
/// they are read only when `peer` is in `trusted`, from the nearest hop
/// back, since every hop beyond the first untrusted one could be made up.
pub fn client<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops = forwarded
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted.contains(hop))
        .unwrap_or(peer)
}

/// [`client`] for a gRPC request: its peer and `x-forwarded-for` metadata.
/// `None` when the transport knows no peer (an in-memory channel).
pub fn of_request<T>(request: &tonic::Request<T>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = request.remote_addr()?.ip();
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some(client(peer, forwarded, trusted))
}

#[cfg(test)]
mod tests {
    use super::client;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_a_trusted_peer_is_looked_through() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        assert_eq!(
            client(ip("192.0.2.9"), ["203.0.113.7"], &trusted),
            ip("192.0.2.9")
        );
        assert_eq!(client(proxy, ["203.0.113.7"], &trusted), ip("203.0.113.7"));
        // A client's own made-up hops sit before the real one.
        assert_eq!(
            client(proxy, ["6.6.6.6, 203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client(proxy, ["203.0.113.7", "10.0.0.1"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(client(proxy, ["garbage"], &trusted), proxy);
        assert_eq!(client(proxy, [], &trusted), proxy);
    }
}
