//! Signed poster tokens: what a store's QR poster encodes, checked without any storage read.
//!
//! A token is 32 bytes written in RFC 4648 base32 without padding (52 characters, all in the QR
//! alphanumeric set, so a capture URL in capitals fits a small QR code):
//!
//! | bytes | field |
//! |-------|-------|
//! | 1     | version ([`VERSION`]) |
//! | 1     | key id: which signing key of the [`KeyRing`] made it |
//! | 4     | campaign id (big-endian) |
//! | 4     | store number: the store's position in the campaign's store list |
//! | 2     | poster serial |
//! | 4     | expiry, Unix seconds (UTC) |
//! | 16    | HMAC-SHA256 of the 16 bytes above, truncated to 128 bits |
//!
//! Keys rotate by key id: a ring holds the key that signs new posters and older keys that still
//! verify the posters they signed. Every way a token can fail (wrong length or alphabet, unknown
//! version or key, bad MAC, expired) is one [`Refused`]: the answer must not help anyone guess.
//!
//! A key may instead be an Ed25519 key, for devices that must check posters offline with a public
//! key only ([`verify_public`], [`KeyRing::public_keys`]). Its tokens are version
//! [`VERSION_ED25519`]: the same 16 bytes, then the 64-byte signature over them; 80 bytes, 128
//! characters (a version 7 QR code instead of 4).
//!
//! # Runtime
//! One HMAC-SHA256 over 16 bytes (two compression blocks with the key's precomputed pads):
//! about a microsecond. An Ed25519 verification takes some tens of microseconds.

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The token format's version.
pub const VERSION: u8 = 1;
/// The version of tokens signed with Ed25519.
pub const VERSION_ED25519: u8 = 2;
/// Bytes before the MAC.
const PAYLOAD: usize = 16;
/// Bytes of the truncated MAC.
const MAC: usize = 16;
/// Bytes of an Ed25519 signature.
const SIGNATURE: usize = 64;
/// Characters of an encoded token.
pub const TOKEN_CHARS: usize = 52;
/// Characters of an encoded Ed25519 token.
pub const TOKEN_CHARS_ED25519: usize = 128;

/// What a poster token says.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PosterClaim {
    pub campaign: u32,
    /// The store's position in the campaign's store list.
    pub store_number: u32,
    pub serial: u16,
    /// Unix seconds (UTC) after which the token is refused.
    pub expires_at: u32,
}

impl PosterClaim {
    fn payload(&self, version: u8, kid: u8) -> [u8; PAYLOAD] {
        let mut p = [0u8; PAYLOAD];
        p[0] = version;
        p[1] = kid;
        p[2..6].copy_from_slice(&self.campaign.to_be_bytes());
        p[6..10].copy_from_slice(&self.store_number.to_be_bytes());
        p[10..12].copy_from_slice(&self.serial.to_be_bytes());
        p[12..16].copy_from_slice(&self.expires_at.to_be_bytes());
        p
    }

    fn read(payload: &[u8; PAYLOAD]) -> PosterClaim {
        let be32 = |i: usize| u32::from_be_bytes(payload[i..i + 4].try_into().expect("sized"));
        PosterClaim {
            campaign: be32(2),
            store_number: be32(6),
            serial: u16::from_be_bytes([payload[10], payload[11]]),
            expires_at: be32(12),
        }
    }
}

/// Decodes a token of `N` bytes written in `chars` characters (capitals or not), refusing any
/// other spelling of the same bytes.
fn decode<const N: usize>(token: &str, chars: usize) -> Option<[u8; N]> {
    if token.len() != chars {
        return None;
    }
    let upper = token.to_ascii_uppercase();
    let mut bytes = [0u8; N];
    match BASE32_NOPAD.decode_mut(upper.as_bytes(), &mut bytes) {
        Ok(n) if n == N => {}
        _ => return None,
    }
    // The last character's spare bits must be zero, or two spellings would verify.
    (BASE32_NOPAD.encode(&bytes) == upper).then_some(bytes)
}

/// What an Ed25519 token says, checked with public keys only (a store device's check): `keys`
/// by key id; refused as [`KeyRing::verify`] refuses.
pub fn verify_public(token: &str, keys: &[(u8, [u8; 32])], now: i64) -> Result<PosterClaim, Refused> {
    let bytes: [u8; PAYLOAD + SIGNATURE] = decode(token, TOKEN_CHARS_ED25519).ok_or(Refused)?;
    let payload: [u8; PAYLOAD] = bytes[..PAYLOAD].try_into().expect("sized");
    let key = keys.iter().find(|(id, _)| *id == payload[1]).ok_or(Refused)?;
    let key = VerifyingKey::from_bytes(&key.1).map_err(|_| Refused)?;
    check_ed25519(&key, &bytes, now)
}

fn check_ed25519(
    key: &VerifyingKey,
    bytes: &[u8; PAYLOAD + SIGNATURE],
    now: i64,
) -> Result<PosterClaim, Refused> {
    let payload: [u8; PAYLOAD] = bytes[..PAYLOAD].try_into().expect("sized");
    if payload[0] != VERSION_ED25519 {
        return Err(Refused);
    }
    let signature = ed25519_dalek::Signature::from_bytes(bytes[PAYLOAD..].try_into().expect("sized"));
    key.verify_strict(&payload, &signature).map_err(|_| Refused)?;
    let claim = PosterClaim::read(&payload);
    if i64::from(claim.expires_at) < now {
        return Err(Refused);
    }
    Ok(claim)
}

/// A token that does not verify, whatever the reason.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the coupon code is not valid")]
pub struct Refused;

/// A bad key ring specification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error(
        "a coupon key is `<key id 0-255>:<secret of at least 32 characters>` or `<key id>:ed25519:<64 hex digits of a private key>`; got `{0}`"
    )]
    Malformed(String),
    #[error("coupon key id {0} is given twice")]
    Duplicate(u8),
    #[error("no coupon signing key")]
    Empty,
}

/// One signing key.
#[derive(Clone)]
pub enum Key {
    /// A shared secret: HMAC-SHA256 tokens (version 1).
    Hmac(HmacSha256),
    /// A private key whose public key devices verify with (version 2).
    Ed25519(Box<SigningKey>),
}

/// Signing keys by key id; the newest (the last given) signs, all verify.
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<u8, Key>,
    signing: u8,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("signing", &self.signing)
            .finish()
    }
}

/// What customer tokens' MACs begin with (poster payloads begin with a version byte).
const CUSTOMER_LABEL: &[u8] = b"\0omniroute customer token\0";
/// Bytes of a customer token's MAC kept (128 bits).
const CUSTOMER_MAC: usize = 16;

/// Shortest secret accepted: 32 characters (at least 128 bits from a random source).
pub const MIN_SECRET: usize = 32;

impl KeyRing {
    /// HMAC keys as `(id, secret)`; the last one signs new tokens.
    pub fn new(keys: &[(u8, &[u8])]) -> Result<KeyRing, KeyRingError> {
        let keys: Vec<(u8, Key)> = keys
            .iter()
            .map(|(id, secret)| {
                (*id, Key::Hmac(HmacSha256::new_from_slice(secret).expect("HMAC takes any key length")))
            })
            .collect();
        KeyRing::with_keys(keys)
    }

    /// Keys of either kind by id; the last one signs new tokens.
    pub fn with_keys(keys: Vec<(u8, Key)>) -> Result<KeyRing, KeyRingError> {
        let signing = keys.last().ok_or(KeyRingError::Empty)?.0;
        let mut ring = BTreeMap::new();
        for (id, key) in keys {
            if ring.insert(id, key).is_some() {
                return Err(KeyRingError::Duplicate(id));
            }
        }
        Ok(KeyRing { keys: ring, signing })
    }

    /// Parses `id:secret,id:ed25519:<hex private key>,...` (the last one signs).
    pub fn parse(spec: &str) -> Result<KeyRing, KeyRingError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let malformed = || KeyRingError::Malformed(part.chars().take(4).collect::<String>() + "…");
            let (id, secret) = part.split_once(':').ok_or_else(malformed)?;
            let id: u8 = id.trim().parse().map_err(|_| malformed())?;
            let key = match secret.strip_prefix("ed25519:") {
                Some(hex) => {
                    let bytes =
                        data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).map_err(|_| malformed())?;
                    let seed: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
                    Key::Ed25519(Box::new(SigningKey::from_bytes(&seed)))
                }
                None if secret.len() >= MIN_SECRET => {
                    Key::Hmac(HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length"))
                }
                None => return Err(malformed()),
            };
            keys.push((id, key));
        }
        KeyRing::with_keys(keys)
    }

    /// The public keys of the ring's Ed25519 keys, by key id (what devices verify with).
    pub fn public_keys(&self) -> Vec<(u8, [u8; 32])> {
        self.keys
            .iter()
            .filter_map(|(id, k)| match k {
                Key::Ed25519(k) => Some((*id, k.verifying_key().to_bytes())),
                Key::Hmac(_) => None,
            })
            .collect()
    }

    /// The key id that signs new tokens.
    pub fn signing_id(&self) -> u8 {
        self.signing
    }

    /// The MAC of a customer token under key `kid`: HMAC-SHA256, keyed by the HMAC secret or
    /// by the Ed25519 private key's bytes, over a label that no poster payload starts with.
    fn customer_mac(&self, kid: u8, body: &str) -> Option<HmacSha256> {
        let mut mac = match self.keys.get(&kid)? {
            Key::Hmac(mac) => mac.clone(),
            Key::Ed25519(key) => HmacSha256::new_from_slice(&key.to_bytes()).expect("any key length"),
        };
        mac.update(CUSTOMER_LABEL);
        mac.update(body.as_bytes());
        Some(mac)
    }

    /// A customer token: what a shopper's app shows a store's screen so that the screen may
    /// read her recommendations and coupons until `expires_at` (Unix seconds):
    /// `<key id>.<expires_at>.<customer id>.<tag>`.
    pub fn sign_customer(&self, customer: &str, expires_at: i64) -> String {
        let body = format!("{}.{expires_at}.{customer}", self.signing);
        let tag = self.customer_mac(self.signing, &body).expect("the signing key is in the ring").finalize();
        format!("{body}.{}", BASE32_NOPAD.encode(&tag.into_bytes()[..CUSTOMER_MAC]))
    }

    /// The customer a token names, if one of the ring's keys signed it and it has not expired.
    pub fn verify_customer(&self, token: &str, now: i64) -> Result<String, Refused> {
        let (body, tag) = token.rsplit_once('.').ok_or(Refused)?;
        let mut parts = body.splitn(3, '.');
        let (Some(kid), Some(expires), Some(customer)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Refused);
        };
        let kid: u8 = kid.parse().map_err(|_| Refused)?;
        let expires: i64 = expires.parse().map_err(|_| Refused)?;
        let tag = BASE32_NOPAD.decode(tag.as_bytes()).map_err(|_| Refused)?;
        if tag.len() != CUSTOMER_MAC {
            return Err(Refused);
        }
        self.customer_mac(kid, body).ok_or(Refused)?.verify_truncated_left(&tag).map_err(|_| Refused)?;
        if expires < now || customer.is_empty() {
            return Err(Refused);
        }
        Ok(customer.to_owned())
    }

    fn mac(&self, kid: u8, payload: &[u8; PAYLOAD]) -> Option<HmacSha256> {
        let Key::Hmac(mac) = self.keys.get(&kid)? else { return None };
        let mut mac = mac.clone();
        mac.update(payload);
        Some(mac)
    }

    /// The token for `claim`, signed with the signing key.
    pub fn sign(&self, claim: &PosterClaim) -> String {
        match self.keys.get(&self.signing).expect("the signing key is in the ring") {
            Key::Hmac(_) => {
                let payload = claim.payload(VERSION, self.signing);
                let tag = self.mac(self.signing, &payload).expect("an HMAC key").finalize().into_bytes();
                let mut bytes = [0u8; PAYLOAD + MAC];
                bytes[..PAYLOAD].copy_from_slice(&payload);
                bytes[PAYLOAD..].copy_from_slice(&tag[..MAC]);
                BASE32_NOPAD.encode(&bytes)
            }
            Key::Ed25519(key) => {
                let payload = claim.payload(VERSION_ED25519, self.signing);
                let mut bytes = [0u8; PAYLOAD + SIGNATURE];
                bytes[..PAYLOAD].copy_from_slice(&payload);
                bytes[PAYLOAD..].copy_from_slice(&key.sign(&payload).to_bytes());
                BASE32_NOPAD.encode(&bytes)
            }
        }
    }

    /// What `token` says, if one of the ring's keys signed it and it has not expired at `now`
    /// (Unix seconds). Lower-case letters are read as capitals (a scanner may fold case).
    pub fn verify(&self, token: &str, now: i64) -> Result<PosterClaim, Refused> {
        if token.len() == TOKEN_CHARS_ED25519 {
            let bytes: [u8; PAYLOAD + SIGNATURE] = decode(token, TOKEN_CHARS_ED25519).ok_or(Refused)?;
            let Some(Key::Ed25519(key)) = self.keys.get(&bytes[1]) else { return Err(Refused) };
            return check_ed25519(&key.verifying_key(), &bytes, now);
        }
        if token.len() != TOKEN_CHARS {
            return Err(Refused);
        }
        let mut upper = [0u8; TOKEN_CHARS];
        for (u, c) in upper.iter_mut().zip(token.bytes()) {
            *u = c.to_ascii_uppercase();
        }
        let mut bytes = [0u8; PAYLOAD + MAC];
        match BASE32_NOPAD.decode_mut(&upper, &mut bytes) {
            Ok(n) if n == PAYLOAD + MAC => {}
            _ => return Err(Refused),
        }
        // 52 characters carry 260 bits: the last 4 must be zero, or two spellings would verify.
        if BASE32_NOPAD.encode(&bytes).as_bytes() != upper {
            return Err(Refused);
        }
        let payload: [u8; PAYLOAD] = bytes[..PAYLOAD].try_into().expect("sized");
        if payload[0] != VERSION {
            return Err(Refused);
        }
        let mac = self.mac(payload[1], &payload).ok_or(Refused)?;
        mac.verify_truncated_left(&bytes[PAYLOAD..]).map_err(|_| Refused)?;
        let claim = PosterClaim::read(&payload);
        if i64::from(claim.expires_at) < now {
            return Err(Refused);
        }
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn claim() -> PosterClaim {
        PosterClaim { campaign: 7, store_number: 123_456, serial: 2, expires_at: 2_000_000_000 }
    }

    #[test]
    fn customer_tokens_name_their_customer_until_they_expire_and_refuse_any_change() {
        let ring = KeyRing::new(&[(1, A)]).unwrap();
        let t = ring.sign_customer("C-00.7", 1_000);
        assert_eq!(ring.verify_customer(&t, 999), Ok("C-00.7".to_owned()));
        assert_eq!(ring.verify_customer(&t, 1_001), Err(Refused));
        let other = t.replacen("C-00.7", "C-00.8", 1);
        assert_eq!(ring.verify_customer(&other, 999), Err(Refused));
        let later = t.replacen("1000", "9000", 1);
        assert_eq!(ring.verify_customer(&later, 999), Err(Refused));
        assert_eq!(KeyRing::new(&[(1, B)]).unwrap().verify_customer(&t, 999), Err(Refused));
        for bad in ["", "1.2", "x.1000.c.AAAA", "1.1000.c.!!"] {
            assert_eq!(ring.verify_customer(bad, 0), Err(Refused), "{bad}");
        }
        let ed = KeyRing::parse(&format!("3:ed25519:{}", "07".repeat(32))).unwrap();
        let t = ed.sign_customer("c1", 50);
        assert_eq!(ed.verify_customer(&t, 10), Ok("c1".to_owned()));
        assert_eq!(ring.verify_customer(&t, 10), Err(Refused));
    }

    #[test]
    fn a_signed_token_verifies_to_its_claim_and_is_52_qr_alphanumeric_characters() {
        let ring = KeyRing::new(&[(1, A)]).unwrap();
        let t = ring.sign(&claim());
        assert_eq!(t.len(), TOKEN_CHARS);
        assert!(t.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)), "{t}");
        assert_eq!(ring.verify(&t, 1_000).unwrap(), claim());
        assert_eq!(ring.verify(&t.to_lowercase(), 1_000).unwrap(), claim(), "case folded by a scanner");
    }

    #[test]
    fn expired_tokens_are_refused() {
        let ring = KeyRing::new(&[(1, A)]).unwrap();
        let t = ring.sign(&claim());
        assert!(ring.verify(&t, 2_000_000_000).is_ok());
        assert_eq!(ring.verify(&t, 2_000_000_001), Err(Refused));
    }

    #[test]
    fn keys_rotate_by_id_old_posters_verify_until_their_key_leaves_the_ring() {
        let old = KeyRing::new(&[(1, A)]).unwrap();
        let t = old.sign(&claim());
        let rotated = KeyRing::new(&[(1, A), (2, B)]).unwrap();
        assert_eq!(rotated.signing_id(), 2);
        assert_eq!(rotated.verify(&t, 0).unwrap(), claim());
        let new = rotated.sign(&claim());
        assert_ne!(new, t);
        assert_eq!(old.verify(&new, 0), Err(Refused), "a key the verifier lacks");
        let retired = KeyRing::new(&[(2, B)]).unwrap();
        assert_eq!(retired.verify(&t, 0), Err(Refused));
        assert!(retired.verify(&new, 0).is_ok());
    }

    #[test]
    fn a_token_signed_with_another_secret_under_the_same_id_is_refused() {
        let mine = KeyRing::new(&[(1, A)]).unwrap();
        let forger = KeyRing::new(&[(1, B)]).unwrap();
        assert_eq!(mine.verify(&forger.sign(&claim()), 0), Err(Refused));
    }

    #[test]
    fn key_specs_are_parsed_and_bad_ones_named() {
        let ring =
            KeyRing::parse("1:0123456789abcdef0123456789abcdef, 2:fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(ring.signing_id(), 2);
        assert!(matches!(KeyRing::parse("1:short"), Err(KeyRingError::Malformed(_))));
        assert!(matches!(
            KeyRing::parse("x:0123456789abcdef0123456789abcdef"),
            Err(KeyRingError::Malformed(_))
        ));
        assert_eq!(
            KeyRing::parse("1:0123456789abcdef0123456789abcdef,1:fedcba9876543210fedcba9876543210")
                .unwrap_err(),
            KeyRingError::Duplicate(1)
        );
        assert_eq!(KeyRing::parse(" ").unwrap_err(), KeyRingError::Empty);
        assert!(!format!("{ring:?}").contains("0123"), "secrets are not printed");
    }

    /// Calls `refuses` with `token` with each bit of each of its bytes flipped in turn.
    fn each_flipped_bit(token: &str, refuses: impl Fn(&str, &str)) {
        let mut bytes = BASE32_NOPAD.decode(token.as_bytes()).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                refuses(&BASE32_NOPAD.encode(&bytes), &format!("byte {i} bit {bit}"));
                bytes[i] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn every_flipped_bit_of_every_byte_is_refused() {
        let ring = KeyRing::new(&[(1, A), (2, B)]).unwrap();
        each_flipped_bit(&ring.sign(&claim()), |t, what| {
            assert_eq!(ring.verify(t, 0), Err(Refused), "{what}")
        });
    }

    #[test]
    fn every_changed_character_is_refused() {
        let ring = KeyRing::new(&[(1, A)]).unwrap();
        let t = ring.sign(&claim());
        for i in 0..t.len() {
            for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=01-".chars() {
                let mut s: Vec<char> = t.chars().collect();
                if s[i] == c {
                    continue;
                }
                s[i] = c;
                let s: String = s.into_iter().collect();
                assert_eq!(ring.verify(&s, 0), Err(Refused), "char {i} -> {c}");
            }
        }
        assert_eq!(ring.verify(&t[..51], 0), Err(Refused));
        assert_eq!(ring.verify(&format!("{t}A"), 0), Err(Refused));
        assert_eq!(ring.verify("", 0), Err(Refused));
    }

    /// An Ed25519 private key (hex) for the tests.
    const ED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    #[test]
    fn ed25519_tokens_verify_with_the_public_key_alone_and_refuse_every_flipped_bit() {
        let ring = KeyRing::parse(&format!("1:{},3:ed25519:{ED}", std::str::from_utf8(A).unwrap())).unwrap();
        assert_eq!(ring.signing_id(), 3);
        let t = ring.sign(&claim());
        assert_eq!(t.len(), TOKEN_CHARS_ED25519);
        assert_eq!(ring.verify(&t, 0).unwrap(), claim());
        let public = ring.public_keys();
        assert_eq!(public.len(), 1, "only Ed25519 keys have a public half");
        assert_eq!(verify_public(&t, &public, 0).unwrap(), claim());
        assert_eq!(verify_public(&t.to_lowercase(), &public, 0).unwrap(), claim());
        assert_eq!(verify_public(&t, &public, 2_000_000_001), Err(Refused), "expired");
        assert_eq!(verify_public(&t, &[(4, public[0].1)], 0), Err(Refused), "another key id");
        // HMAC tokens of the same ring still verify; a device cannot check those.
        let hmac =
            KeyRing::parse(std::str::from_utf8(A).map(|a| format!("1:{a}")).unwrap().as_str()).unwrap();
        let old = hmac.sign(&claim());
        assert_eq!(ring.verify(&old, 0).unwrap(), claim());
        assert_eq!(verify_public(&old, &public, 0), Err(Refused));
        each_flipped_bit(&t, |t, what| {
            assert_eq!(ring.verify(t, 0), Err(Refused), "{what}");
            assert_eq!(verify_public(t, &public, 0), Err(Refused), "{what}");
        });
        assert!(matches!(KeyRing::parse("1:ed25519:abcd"), Err(KeyRingError::Malformed(_))));
        assert!(!format!("{ring:?}").contains("9d61"), "private keys are not printed");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(29), ..ProptestConfig::default() })]

        #[test]
        fn any_claim_round_trips(campaign: u32, store_number: u32, serial: u16, expires_at: u32) {
            let ring = KeyRing::new(&[(9, A)]).unwrap();
            let c = PosterClaim { campaign, store_number, serial, expires_at };
            prop_assert_eq!(ring.verify(&ring.sign(&c), 0).unwrap(), c);
        }

        #[test]
        fn random_strings_never_verify(s in "[A-Z2-7]{52}") {
            let ring = KeyRing::new(&[(1, A)]).unwrap();
            prop_assert_eq!(ring.verify(&s, 0), Err(Refused));
        }
    }
}
