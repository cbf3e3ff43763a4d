//! Signed witness votes. A controller asks a witness `GET /v1/vote` with a fresh random
//! nonce and its service's name, signed with the policy's `[guardrails] witness_key`; the
//! witness answers with what it sees (its verdict per region, when it last observed each
//! by its own clock, how long ago its loop last turned), echoes the nonce, and signs the
//! body, which carries its signing time. The controller counts the answer only when the
//! signature is right, the service is its own and the nonce is the one it just sent.
//!
//! Why an HMAC with a shared key rather than mutual TLS: a vote must be authentic and
//! about this service, not secret, and the witness and the controller are configured from
//! the same policy file, so one secret reference there (`{ env = … }` or `{ file = … }`)
//! is all an operator manages. Mutual TLS would need a CA, a certificate and key per
//! process, renewal, and a TLS listener on the witness, and it would still not bind an
//! answer to the request it answers; the nonce does, so a recorded "down" cannot be
//! replayed into a later poll. An on-path attacker without the key can drop votes
//! (which only ever holds a failover back) but cannot forge one.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::clients::secret::Secret;
use crate::core::model::RegionName;
use crate::core::time::Ts;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub const PATH: &str = "/v1/vote";
/// The controller's random nonce, hex.
pub const NONCE_HEADER: &str = "x-lifeboat-nonce";
/// The service the controller asks about.
pub const SERVICE_HEADER: &str = "x-lifeboat-service";
/// The request's signature (from the controller) or the answer's (from the witness), hex.
pub const SIGNATURE_HEADER: &str = "x-lifeboat-signature";
/// An answer larger than this is not a vote: the controller stops reading.
pub const MAX_BODY: usize = 64 * 1024;
/// A shorter key could be guessed offline from one signed answer.
pub const MIN_KEY_LEN: usize = 32;

/// The key both ends sign with.
#[derive(Clone)]
pub struct VoteKey(Secret);

impl std::fmt::Debug for VoteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoteKey(<redacted>)")
    }
}

impl VoteKey {
    /// Errors: a key shorter than `MIN_KEY_LEN` bytes.
    pub fn new(secret: Secret) -> Result<VoteKey, String> {
        if secret.expose().len() < MIN_KEY_LEN {
            return Err(format!(
                "[guardrails] witness_key is shorter than {MIN_KEY_LEN} characters; make one with `openssl rand -hex 32`"
            ));
        }
        Ok(VoteKey(secret))
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC accepts keys of any length: this cannot fail.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(self.0.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for p in parts {
            m.update(p);
        }
        m
    }

    fn request_parts<'a>(service: &'a str, nonce: &'a str) -> [&'a [u8]; 4] {
        [
            b"lifeboat vote request v1\n",
            service.as_bytes(),
            b"\n",
            nonce.as_bytes(),
        ]
    }

    /// The signature of a vote request for `service` with `nonce`.
    pub fn sign_request(&self, service: &str, nonce: &str) -> String {
        hex(&self
            .mac(&Self::request_parts(service, nonce))
            .finalize()
            .into_bytes())
    }

    /// Checks a request's signature in constant time.
    pub fn verify_request(&self, service: &str, nonce: &str, signature: &str) -> bool {
        unhex(signature).is_some_and(|sig| {
            self.mac(&Self::request_parts(service, nonce))
                .verify_slice(&sig)
                .is_ok()
        })
    }

    /// The signature of an answer's body (which holds its signing time).
    pub fn sign_answer(&self, body: &[u8]) -> String {
        hex(&self
            .mac(&[b"lifeboat vote v1\n", body])
            .finalize()
            .into_bytes())
    }

    /// Checks an answer's signature in constant time.
    pub fn verify_answer(&self, body: &[u8], signature: &str) -> bool {
        unhex(signature).is_some_and(|sig| {
            self.mac(&[b"lifeboat vote v1\n", body])
                .verify_slice(&sig)
                .is_ok()
        })
    }
}

/// A witness's signed answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// The service the witness watches.
    pub service: String,
    /// The controller's nonce, echoed: this answer answers that request and no other.
    pub nonce: String,
    /// The witness's wall clock when it signed.
    pub signed_at: Ts,
    /// How long before signing the witness's control loop last turned (ms).
    pub loop_age_ms: u64,
    pub regions: Vec<RegionVote>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionVote {
    pub region: RegionName,
    /// The witness's verdict is `down`.
    pub down: bool,
    /// The witness's newest observation of the region's critical probes, by its clock.
    pub observed_at: Option<Ts>,
}

impl Vote {
    /// How old the witness's view of `region` was when it signed, measured on its own
    /// clock alone (so a skew between the two machines' clocks does not matter): the age
    /// of its newest observation, or its loop's age if that is older. `None` when it has
    /// not observed the region.
    pub fn age(&self, region: &RegionVote) -> Option<Duration> {
        let observed = region.observed_at?;
        Some(
            self.signed_at
                .since(observed)
                .max(Duration::from_millis(self.loop_age_ms)),
        )
    }
}

/// A random nonce: 128 bits from the OS, hex.
///
/// Errors: the OS gave no random bytes.
pub fn nonce() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no random bytes for a vote nonce: {e}"))?;
    Ok(hex(&b))
}

/// Whether `s` looks like a nonce this module makes (bounded, hex).
pub fn valid_nonce(s: &str) -> bool {
    (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> VoteKey {
        VoteKey::new(Secret::new(k)).expect("key")
    }

    #[test]
    fn a_signature_checks_only_with_the_same_key_and_the_same_bytes() {
        let (a, b) = (key(&"a".repeat(32)), key(&"b".repeat(32)));
        let sig = a.sign_answer(b"{\"x\":1}");
        assert!(a.verify_answer(b"{\"x\":1}", &sig));
        assert!(!a.verify_answer(b"{\"x\":2}", &sig));
        assert!(!b.verify_answer(b"{\"x\":1}", &sig));
        assert!(!a.verify_answer(b"{\"x\":1}", "zz"));
        assert!(!a.verify_answer(b"{\"x\":1}", ""));
        let req = a.sign_request("orders", "00ff");
        assert!(a.verify_request("orders", "00ff", &req));
        assert!(!a.verify_request("billing", "00ff", &req));
        // A request's signature is not an answer's.
        assert!(!a.verify_answer(b"orders\n00ff", &req));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(VoteKey::new(Secret::new("short")).is_err());
    }

    #[test]
    fn age_is_measured_on_the_witness_clock_and_covers_a_stuck_loop() {
        let v = Vote {
            service: "s".into(),
            nonce: "n".into(),
            signed_at: Ts(100_000),
            loop_age_ms: 500,
            regions: vec![],
        };
        let r = |at| RegionVote {
            region: RegionName::new("us-east-1"),
            down: true,
            observed_at: at,
        };
        assert_eq!(v.age(&r(Some(Ts(99_000)))), Some(Duration::from_secs(1)));
        assert_eq!(
            v.age(&r(Some(Ts(99_900)))),
            Some(Duration::from_millis(500))
        );
        assert_eq!(v.age(&r(None)), None);
    }
}
