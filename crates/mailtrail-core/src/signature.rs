//! Mailgun webhook signatures.
//!
//! Mailgun signs `timestamp + token` (no separator) with HMAC-SHA256 under the account's webhook
//! signing key and sends the lower-case hex digest. The body itself is not signed, so a captured
//! triple can be glued to any body: verification here only proves the triple came from Mailgun.
//! Replay protection (single-use tokens, a freshness window) is layered on top by the receiver.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A Mailgun webhook signing key. Held as a [`SecretString`], so its `Debug` prints
/// `[REDACTED]` and the key is wiped from memory when dropped.
#[derive(Clone, Debug)]
pub struct SigningKey(SecretString);

impl SigningKey {
    /// Wraps the key exactly as Mailgun shows it (the bytes of the string are the HMAC key).
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    /// Computes the lower-case hex signature Mailgun would send for `timestamp` and `token`.
    pub fn sign(&self, timestamp: &str, token: &str) -> String {
        hex::encode(self.mac(timestamp, token).finalize().into_bytes())
    }

    fn mac(&self, timestamp: &str, token: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail; an empty key is refused when
        // the configuration is parsed.
        let mut mac = match HmacSha256::new_from_slice(self.0.expose_secret().as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        mac
    }
}

/// Every signing key that is currently valid; several are accepted at once during a rotation.
#[derive(Clone, Debug, Default)]
pub struct SigningKeys(Vec<SigningKey>);

impl SigningKeys {
    /// Builds the set from a list of keys.
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self(keys)
    }

    /// Parses the comma-separated form used by `MAILTRAIL_SIGNING_KEYS` (blanks are ignored).
    pub fn from_comma_separated(value: &str) -> Result<Self, SignatureError> {
        let keys: Vec<SigningKey> = value
            .split(',')
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(SigningKey::new)
            .collect();
        if keys.is_empty() {
            return Err(SignatureError::NoKeys);
        }
        Ok(Self(keys))
    }

    /// The first key, used to sign sample events.
    pub fn first(&self) -> Option<&SigningKey> {
        self.0.first()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `signature` against every key in constant time per key and returns the index of
    /// the key that matched (safe to log; the key itself never is).
    pub fn verify(&self, signed: &SignedToken<'_>) -> Result<usize, SignatureError> {
        // Decoding the hex first makes the comparison case-insensitive and lets the HMAC crate
        // do the constant-time comparison on bytes.
        let provided =
            hex::decode(signed.signature.trim()).map_err(|_| SignatureError::Malformed)?;
        if provided.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        self.0
            .iter()
            .position(|key| {
                key.mac(signed.timestamp, signed.token)
                    .verify_slice(&provided)
                    .is_ok()
            })
            .ok_or(SignatureError::Mismatch)
    }
}

/// The three signed fields of a webhook, borrowed from the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedToken<'a> {
    /// Integer seconds since the epoch, as the string Mailgun signed.
    pub timestamp: &'a str,
    /// The random single-use token.
    pub token: &'a str,
    /// Lower-case hex HMAC-SHA256 of `timestamp + token`.
    pub signature: &'a str,
}

impl SignedToken<'_> {
    /// The signed timestamp as seconds since the epoch.
    pub fn timestamp_seconds(&self) -> Result<i64, SignatureError> {
        self.timestamp
            .trim()
            .parse::<i64>()
            .map_err(|_| SignatureError::Malformed)
    }

    /// Checks that the signed timestamp lies within `window_seconds` of `now_seconds`, in either
    /// direction (a small clock skew ahead is as suspicious as a stale one, but tolerated alike).
    ///
    /// The timestamp is whatever i64 the sender chose, so the distance is taken without overflow:
    /// `now - signed` wraps for a timestamp of `now - 2^63` (to a negative number whose absolute
    /// value wraps again), which would let a signature from any time through.
    pub fn check_fresh(&self, now_seconds: i64, window_seconds: i64) -> Result<(), SignatureError> {
        let signed_at = self.timestamp_seconds()?;
        let window = u64::try_from(window_seconds).unwrap_or(0);
        if now_seconds.abs_diff(signed_at) > window {
            return Err(SignatureError::Stale {
                age_seconds: now_seconds.saturating_sub(signed_at),
            });
        }
        Ok(())
    }
}

/// Why a webhook signature was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The body has no signature, token or timestamp.
    #[error("the webhook carries no signature, token or timestamp")]
    Missing,
    /// The signature or timestamp is not of the form Mailgun sends.
    #[error("the signature or timestamp is malformed")]
    Malformed,
    /// The signature matches none of the configured keys.
    #[error("the signature matches none of the configured signing keys")]
    Mismatch,
    /// The timestamp lies outside the accepted window.
    #[error(
        "the signature timestamp is {age_seconds} s away from now, outside the accepted window"
    )]
    Stale {
        /// Now minus the signed timestamp (saturated at the ends of i64).
        age_seconds: i64,
    },
    /// No signing key is configured.
    #[error("no signing key is configured")]
    NoKeys,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from mailgun-protocol.md §4, each taken from a public project's fixtures.
    const VECTORS: [(&str, &str, &str, &str); 4] = [
        (
            "key-0p6mqbf74lb20gzq9f4dhpn9rg3zyk26",
            "1661621787",
            "d1931d9645b65e60f6fddf94448e982ff8db9256144a7fcb15",
            "1aed11dcc25700d6b75f9a6d568343ea02ecdd3fc89cc3209e2883a19e5cdd50",
        ),
        (
            "key-qblubkqnkdn4lfes5oscf57ryllaia42",
            "1499697910",
            "b5751a49a024483da8d41c3684f98b8f",
            "374e0b1a3deeb57318c783d43ff71093fbf26406a452761dab91bf346a93b49e",
        ),
        (
            "55484a8372da2cf84445b8a65d674511",
            "1712845621",
            "ba80a5aa86eead8b685f9d3644be722756394cea4fb9ca7f78",
            "aba5651de3f086f5674a1d0dd864542c6c9f26bb4d5274453e4ea4a76352e378",
        ),
        (
            "TEST_WEBHOOK_SIGNING_KEY",
            "1534108637",
            "651869375b9df3c98fc15c4889b102119add1235c38fc92824",
            "2a75affe24846ead9e37e614a5e7643a04abf4d5b49b34d224ede9af23a00ccc",
        ),
    ];

    #[test]
    fn known_vectors_sign_and_verify() {
        for (key, timestamp, token, signature) in VECTORS {
            let key = SigningKey::new(key);
            assert_eq!(key.sign(timestamp, token), signature);
            let keys = SigningKeys::new(vec![key]);
            let signed = SignedToken {
                timestamp,
                token,
                signature,
            };
            assert_eq!(keys.verify(&signed), Ok(0));
        }
    }

    #[test]
    fn upper_case_hex_is_accepted() {
        let (key, timestamp, token, signature) = VECTORS[0];
        let keys = SigningKeys::from_comma_separated(key).unwrap();
        let upper = signature.to_uppercase();
        let signed = SignedToken {
            timestamp,
            token,
            signature: &upper,
        };
        assert_eq!(keys.verify(&signed), Ok(0));
    }

    #[test]
    fn verify_reports_which_of_several_keys_matched() {
        let (key, timestamp, token, signature) = VECTORS[1];
        let keys = SigningKeys::from_comma_separated(&format!("old-key, {key} ,")).unwrap();
        assert_eq!(keys.len(), 2);
        let signed = SignedToken {
            timestamp,
            token,
            signature,
        };
        assert_eq!(keys.verify(&signed), Ok(1));
    }

    #[test]
    fn a_wrong_key_or_a_changed_token_is_a_mismatch() {
        let (_, timestamp, token, signature) = VECTORS[0];
        let keys = SigningKeys::from_comma_separated("wrong signing key").unwrap();
        let signed = SignedToken {
            timestamp,
            token,
            signature,
        };
        assert_eq!(keys.verify(&signed), Err(SignatureError::Mismatch));

        let (key, ..) = VECTORS[0];
        let keys = SigningKeys::from_comma_separated(key).unwrap();
        let tampered = SignedToken {
            timestamp,
            token: "another-token",
            signature,
        };
        assert_eq!(keys.verify(&tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn non_hex_or_short_signatures_are_malformed() {
        let keys = SigningKeys::from_comma_separated("k").unwrap();
        for signature in ["dummy-signature", "abcd", ""] {
            let signed = SignedToken {
                timestamp: "1",
                token: "t",
                signature,
            };
            assert_eq!(keys.verify(&signed), Err(SignatureError::Malformed));
        }
    }

    #[test]
    fn freshness_window_applies_both_ways() {
        let signed = SignedToken {
            timestamp: "1000",
            token: "t",
            signature: "",
        };
        assert_eq!(signed.check_fresh(1500, 600), Ok(()));
        assert_eq!(signed.check_fresh(500, 600), Ok(()));
        assert_eq!(
            signed.check_fresh(2000, 600),
            Err(SignatureError::Stale { age_seconds: 1000 })
        );
        assert_eq!(
            signed.check_fresh(0, 600),
            Err(SignatureError::Stale { age_seconds: -1000 })
        );
    }

    #[test]
    fn timestamps_at_the_extremes_of_i64_are_stale_or_malformed_never_fresh() {
        const NOW: i64 = 1_764_000_000;
        const WINDOW: i64 = 9 * 3600;
        let check = |timestamp: &str| {
            SignedToken {
                timestamp,
                token: "t",
                signature: "",
            }
            .check_fresh(NOW, WINDOW)
        };
        // now - 2^63 fits in an i64; now - it does not, and used to wrap to a small age.
        let now_minus_2_63 = (i128::from(NOW) - (1_i128 << 63)).to_string();
        let now_plus_2_63 = (i128::from(NOW) + (1_i128 << 63)).to_string();
        for stale in [
            now_minus_2_63.as_str(),
            &i64::MIN.to_string(),
            &i64::MAX.to_string(),
            &(i64::MIN + 1).to_string(),
            "-1",
            "0",
            "-9223372036854775807",
        ] {
            assert!(
                matches!(check(stale), Err(SignatureError::Stale { .. })),
                "{stale}: {:?}",
                check(stale)
            );
        }
        for malformed in [
            now_plus_2_63.as_str(),
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999999999999",
            "1e30",
            "",
            "--1",
        ] {
            assert_eq!(
                check(malformed),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(check(&NOW.to_string()), Ok(()));
        assert_eq!(check(&(NOW - WINDOW).to_string()), Ok(()));
        assert_eq!(check(&(NOW + WINDOW).to_string()), Ok(()));
        assert!(check(&(NOW + WINDOW + 1).to_string()).is_err());
        // The age reported saturates instead of wrapping.
        assert_eq!(
            check(&i64::MIN.to_string()),
            Err(SignatureError::Stale {
                age_seconds: i64::MAX
            })
        );
        assert_eq!(
            SignedToken {
                timestamp: &i64::MAX.to_string(),
                token: "t",
                signature: ""
            }
            .check_fresh(i64::MIN, WINDOW),
            Err(SignatureError::Stale {
                age_seconds: i64::MIN
            })
        );
    }

    #[test]
    fn an_empty_key_list_is_refused_and_keys_never_print() {
        assert_eq!(
            SigningKeys::from_comma_separated(" , ").unwrap_err(),
            SignatureError::NoKeys
        );
        let keys = SigningKeys::from_comma_separated("secret-key").unwrap();
        assert!(!format!("{keys:?}").contains("secret"));
    }
}
