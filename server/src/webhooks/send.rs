//! The HTTP side of a delivery: sign, POST, read the status.

use std::sync::OnceLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
pub const SIGNATURE_HEADER: &str = "bitcain-signature";

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent("bitcain-ai-batch-webhooks")
            // A receiver's redirect is not followed: the signed body goes where it was asked to.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a default TLS client")
    })
}

/// POSTs the signed body; `Ok(status)` for a 2xx, otherwise why not.
pub async fn post(
    url: &str,
    body: Vec<u8>,
    secret: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let signature = sign(secret, chrono::Utc::now().timestamp(), &body);
    let response = client()
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs())
            } else if e.is_connect() {
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
    fn the_signature_is_stripes_scheme() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let header = sign("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(header, sign("whsec_other", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(header, sign("whsec_test", 1_700_000_001, br#"{"a":1}"#));
    }
}
