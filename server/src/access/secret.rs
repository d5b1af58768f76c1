//! Bearer tokens and session cookies: `aib_<id>_<secret>`. The id is looked up; only a
//! SHA-256 of the secret is stored, and it is compared in constant time. The secrets are
//! long and random, so a fast hash is right here (a password hash is for guessable input).

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "aib_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;

pub struct Secret {
    pub id: String,
    pub hash: String,
    /// The full credential, shown once.
    pub plain: String,
}

/// 40 random letters and digits from the OS-seeded CSPRNG (about 238 bits).
pub fn random() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), SECRET_LEN)
}

pub fn generate() -> Secret {
    let id = Alphanumeric.sample_string(&mut rand::rng(), ID_LEN);
    let secret = random();
    Secret {
        plain: format!("{PREFIX}{id}_{secret}"),
        hash: hash(&secret),
        id,
    }
}

/// Splits a presented credential into its id and secret, if it has our shape.
pub fn parse(presented: &str) -> Option<(&str, &str)> {
    let (id, secret) = presented.strip_prefix(PREFIX)?.split_once('_')?;
    (id.len() == ID_LEN && !secret.is_empty()).then_some((id, secret))
}

pub fn matches(secret: &str, stored_hash: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_parse_and_match() {
        let s = generate();
        let (id, secret) = parse(&s.plain).expect("own format parses");
        assert_eq!(id, s.id);
        assert!(matches(secret, &s.hash));
        assert!(!matches("wrong", &s.hash));
        assert_ne!(generate().plain, s.plain);
    }

    #[test]
    fn foreign_shapes_are_rejected() {
        for bad in [
            "",
            "aib_",
            "Bearer x",
            "aib_short_secret",
            "xyz_abcdefghijkl_secret",
            "aib_abcdefghijkl_",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
