//! The HTTP side of a delivery: sign, POST, read the status.
//!
//! Signed by the Standard Webhooks specification (<https://www.standardwebhooks.com>), which
//! OpenAI and many others use and for which receivers have libraries in every language:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, keyed with the base64 part of the `whsec_…` secret. The older
//! `bitcain-signature` header stays for receivers written against it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::address::{Destinations, GuardedResolver, Lookup};

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, keyed with the whole secret
/// (the scheme before Standard Webhooks; kept for receivers that check it).
pub const SIGNATURE_HEADER: &str = "bitcain-signature";

const SECRET_PREFIX: &str = "whsec_";

/// The signing key of a `whsec_…` secret: its base64 part decoded (the bytes as written, for a
/// secret that is not base64).
fn key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The `webhook-signature` value for a message: `v1,<base64>`.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let signed = hmac(
        &key(secret),
        &[format!("{message_id}.{timestamp}.").as_bytes(), body],
    );
    format!("v1,{}", STANDARD.encode(signed))
}

/// How far a signed message's timestamp may be from our clock (the specification's default):
/// an older one may be a replay.
pub const TOLERANCE_SECS: i64 = 300;

/// Whether a received message is signed with `secret`: one of the space-separated `v1,…`
/// signatures in `signature_header` matches (compared in constant time), and its timestamp is
/// within [`TOLERANCE_SECS`] of `now`.
pub fn verify(
    secret: &str,
    message_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> bool {
    let Ok(timestamp) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return false;
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes a key of any length");
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body);
    signature_header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok())
}

/// The older `bitcain-signature` value for `body` sent at `timestamp`.
pub fn sign_legacy(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let signed = hmac(
        secret.as_bytes(),
        &[format!("{timestamp}.").as_bytes(), body],
    );
    format!("t={timestamp},v1={}", hex::encode(signed))
}

/// The HTTP client of deliveries: it dials only addresses the destinations allow (names are
/// resolved through the guard), never through a proxy, and never follows a redirect (the
/// signed body goes where it was asked to, and a redirect could point anywhere).
pub fn client(destinations: Destinations, lookup: Arc<dyn Lookup>) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("bitcain-ai-batch-webhooks")
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            lookup,
            destinations,
        }))
        .build()
        .expect("a default TLS client")
}

/// One delivery to make.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub message_id: &'a str,
    pub body: Vec<u8>,
    pub secret: &'a str,
    pub timeout: Duration,
}

/// POSTs the signed body; `Ok(status)` for a 2xx, otherwise why not. An address written as
/// an IP is judged here (the client resolves only names).
pub async fn post(
    client: &reqwest::Client,
    destinations: &Destinations,
    delivery: Delivery<'_>,
) -> Result<u16, String> {
    if let Some(why) = destinations.refuses_url(delivery.url) {
        return Err(format!("refused: {why}"));
    }
    let timestamp = chrono::Utc::now().timestamp();
    let response = client
        .post(delivery.url)
        .timeout(delivery.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            sign(
                delivery.secret,
                delivery.message_id,
                timestamp,
                &delivery.body,
            ),
        )
        .header(
            SIGNATURE_HEADER,
            sign_legacy(delivery.secret, timestamp, &delivery.body),
        )
        .body(delivery.body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", delivery.timeout.as_secs())
            } else if e.is_connect() {
                // The guard's refusal comes back as a connect error, deep in its sources.
                let mut cause: Option<&dyn std::error::Error> = Some(&e);
                while let Some(error) = cause {
                    let text = error.to_string();
                    if text.starts_with("refused:") {
                        return text;
                    }
                    cause = error.source();
                }
                "could not connect".to_string()
            } else {
                format!("the request failed: {e}")
            }
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification (its README's test vector).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_ne!(
            sign(secret, "msg_other", 1614265330, body),
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        );
    }

    /// Addresses written as IPs never reach the resolver, so `post` judges them itself: every
    /// loopback form is refused without a connection, unless loopback is allowed.
    #[tokio::test]
    async fn literal_loopback_addresses_are_refused_before_any_connection() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let deliver = |destinations: Destinations, url: String| async move {
            let client = client(destinations.clone(), Arc::new(super::super::SystemLookup));
            let delivery = Delivery {
                url: &url,
                message_id: "msg_x",
                body: b"{}".to_vec(),
                secret: "whsec_dGVzdA==",
                timeout: Duration::from_secs(2),
            };
            post(&client, &destinations, delivery).await
        };
        for host in [
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
            "2130706433",
            "localhost",
            "0.0.0.0",
        ] {
            let url = format!("https://{host}:{port}/hook");
            let answer = deliver(Destinations::default(), url.clone()).await;
            assert!(
                matches!(&answer, Err(why) if why.starts_with("refused:")),
                "{url}: {answer:?}"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was dialled");
        let allowed = Destinations {
            loopback: true,
            ..Destinations::default()
        };
        let answer = deliver(allowed, format!("https://127.0.0.1:{port}/hook")).await;
        assert!(answer.is_err(), "the listener speaks no TLS");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "allowed loopback is dialled"
        );
    }

    #[test]
    fn the_legacy_signature_is_stripes_scheme() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let header = sign_legacy("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(
            header,
            sign_legacy("whsec_other", 1_700_000_000, br#"{"a":1}"#)
        );
    }
}
