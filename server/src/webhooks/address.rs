//! Where a webhook may go: the public internet only. A trader's `callback_url` must never
//! make this server reach something only the server can reach (its own loopback, the
//! private network, the cloud's metadata service). Checked twice: at enqueue for addresses
//! written as IPs, and at connect time for the address actually dialled, since a name may
//! resolve to anything, and to something else later. An operator may allow networks of
//! internal receivers (`AI_BATCH_WEBHOOK_ALLOW_NETWORKS`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;

/// Which addresses webhooks may reach besides public ones.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    /// Networks of internal receivers the operator allows.
    pub allowed: Vec<IpNet>,
    /// This machine (`http://` to loopback, for development and tests).
    pub loopback: bool,
}

impl Destinations {
    /// Why the server may not send to `ip`, or `None` when it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if self.allowed.iter().any(|net| net.contains(&ip)) || (self.loopback && ip.is_loopback()) {
            return None;
        }
        not_public(ip).map(|kind| format!("{ip} is {kind}"))
    }

    /// Why a callback URL may not be used, judged without a DNS lookup: its host written as
    /// an IP (in any form a URL parser accepts: `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`)
    /// or a name that always means this machine.
    pub fn refuses_url(&self, url: &str) -> Option<String> {
        let Ok(parsed) = url::Url::parse(url) else {
            return Some("it is not a valid URL".into());
        };
        match parsed.host()? {
            url::Host::Ipv4(ip) => self.refuses(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => self.refuses(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost" || name.ends_with(".localhost");
                (local && !self.loopback).then(|| format!("{name} is this machine"))
            }
        }
    }
}

/// What kind of non-public address `ip` is, if it is one.
fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => not_public_v6(v6),
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (127, _, _) => "a loopback address",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "a private address",
        (100, 64..=127, _) => "a shared (CGNAT) address",
        (169, 254, _) => "a link-local address (cloud metadata lives there)",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_unspecified() {
        "the unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if s[0..6] == [0, 0, 0, 0, 0, 0xffff] {
        "an IPv4-mapped address"
    } else if s[0..6] == [0; 6] {
        "an IPv4-compatible address"
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        "a NAT64 address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a unique-local address"
    } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        "a link-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0) {
        "a tunnel address that embeds an IPv4 one"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "a discard address"
    } else {
        return None;
    })
}

/// Looks a host name up: the system's resolver, or a stand-in in tests.
pub trait Lookup: Send + Sync {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system's resolver (getaddrinfo, through tokio).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The resolver webhook deliveries connect through: of the addresses a name resolves to,
/// only allowed ones are dialled, and a name with none is refused before any connection.
pub struct GuardedResolver {
    pub lookup: Arc<dyn Lookup>,
    pub destinations: Destinations,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let lookup = self.lookup.clone();
        let destinations = self.destinations.clone();
        Box::pin(async move {
            let found = lookup.lookup(host.clone()).await?;
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| match destinations.refuses(*ip) {
                    Some(why) => {
                        refused.push(why);
                        false
                    }
                    None => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let why = if refused.is_empty() {
                    format!("{host} resolves to no address")
                } else {
                    format!("refused: {host} resolves to {}", refused.join(", "))
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        Destinations::default().refuses_url(url).is_some()
    }

    #[test]
    fn every_non_public_form_is_refused_and_public_ones_are_not() {
        for url in [
            "https://169.254.169.254/latest/meta-data",
            "https://10.255.255.1/",
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::1]/",
            "https://[::]/",
            "https://0.0.0.0/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://100.64.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://[64:ff9b::a00:1]/",
            "https://[2002:a00:1::]/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
        for url in [
            "https://hooks.example.com/x",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
        ] {
            assert!(!refused(url), "{url} is public");
        }
    }

    #[test]
    fn the_operator_may_allow_networks_and_loopback() {
        let destinations = Destinations {
            allowed: vec!["10.1.0.0/16".parse().unwrap()],
            loopback: true,
        };
        assert_eq!(destinations.refuses_url("https://10.1.2.3/"), None);
        assert!(destinations.refuses_url("https://10.2.0.1/").is_some());
        assert_eq!(destinations.refuses_url("http://127.0.0.1:8080/"), None);
        assert_eq!(destinations.refuses_url("http://localhost/"), None);
        assert!(
            destinations
                .refuses_url("https://169.254.169.254/")
                .is_some()
        );
    }
}
