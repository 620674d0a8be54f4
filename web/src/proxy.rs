//! The client's address behind reverse proxies (`BETFLOW_TRUSTED_PROXIES`).
//!
//! The login limiter counts guesses per client address and the audit log
//! records it. Behind a TLS proxy every request comes from the proxy: one
//! address for every client, so one client's failed logins would lock out
//! all the others. The proxy names the client in `X-Forwarded-For`, but a
//! client can send that header too: it is read only when the peer is a
//! proxy the operator listed, and from its right end, skipping listed
//! proxies, so an entry a client wrote itself (always further left) is
//! never taken.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Addresses and CIDR blocks of the proxies whose `X-Forwarded-For` is
/// believed; none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// `10.0.0.5, 10.1.0.0/16, fd00::/8`: comma-separated.
    fn from_str(spec: &str) -> Result<Self, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "`{s}` is neither an address nor a CIDR block (e.g. 10.0.0.5 or 10.0.0.0/8)"
                        )
                    })
            })
            .collect::<Result<Vec<IpNet>, String>>()
            .map(|nets| Self(nets.into()))
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The address of the client behind `peer`: `peer` itself unless it is
    /// a trusted proxy; else the rightmost `X-Forwarded-For` entry that is
    /// not one (`peer` again when the header has none, or an entry there
    /// is not an address).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // A line that is not text is not skipped: the proxy's own entry may
        // be on it, and what stays readable would be the client's.
        let Ok(lines) = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str())
            .collect::<Result<Vec<&str>, _>>()
        else {
            return peer;
        };
        let entries: Vec<&str> = lines
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in entries.iter().rev() {
            match entry.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return ip,
                Err(_) => return peer,
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.5"), &forwarded(&["203.0.113.7"])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.5, 10.1.0.0/16".parse().expect("valid");
        // A client that forged an entry: the proxy appends the real address.
        let headers = forwarded(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &headers), ip("203.0.113.7"));
        // Two proxies in a row, one header line each.
        let chained = forwarded(&["6.6.6.6", "203.0.113.7, 10.1.2.3"]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &chained), ip("203.0.113.7"));
        // From an untrusted peer the header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        // No header, or garbage where the proxy's entry should be: the peer.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &forwarded(&["unknown"])),
            ip("10.0.0.5")
        );
        // A line that is not text: not skipped for what else is readable.
        let mut binary = forwarded(&["203.0.113.7"]);
        binary.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"6.6.6.6 \xff, 198.51.100.2").expect("header"),
        );
        assert_eq!(proxies.client(ip("10.0.0.5"), &binary), ip("10.0.0.5"));
        // An IPv4 peer on a dual-stack listener.
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.5"), &forwarded(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_text() {
        let err = "10.0.0.5, proxy.local"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(err.contains("`proxy.local`"), "{err}");
        assert!("".parse::<TrustedProxies>().is_ok());
    }
}
