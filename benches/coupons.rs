//! Criterion benchmarks of coupon tokens: signing a poster's token and verifying one (the first
//! step of every capture, with no storage read), and refusing a tampered one; the same for an
//! Ed25519 key (server side, and a device's check with the public key alone).
//!
//! Run: `cargo bench -p omniroute --bench coupons`

use criterion::{criterion_group, criterion_main, Criterion};
use omniroute::coupons::token::{verify_public, KeyRing, PosterClaim};
use std::hint::black_box;

fn tokens(c: &mut Criterion) {
    // A ring of three keys (two retired, still verifying), as after two rotations.
    let ring = KeyRing::parse(
        "1:first-secret-0123456789abcdefghijklmnop,2:second-secret-0123456789abcdefghijklm,\
         3:third-secret-0123456789abcdefghijklmnopq",
    )
    .expect("valid keys");
    let claim =
        PosterClaim { campaign: 123_456, store_number: 179_999, serial: 3, expires_at: 1_794_412_799 };
    let token = ring.sign(&claim);
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let now = 1_794_326_400;
    c.bench_function("token/sign", |b| b.iter(|| ring.sign(black_box(&claim))));
    c.bench_function("token/verify", |b| b.iter(|| ring.verify(black_box(&token), now).expect("valid")));
    c.bench_function("token/refuse_tampered", |b| {
        b.iter(|| ring.verify(black_box(&tampered), now).expect_err("tampered"))
    });
    let ed = KeyRing::parse(
        "1:first-secret-0123456789abcdefghijklmnop,\
         4:ed25519:9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    )
    .expect("valid keys");
    let signed = ed.sign(&claim);
    let public = ed.public_keys();
    c.bench_function("token_ed25519/sign", |b| b.iter(|| ed.sign(black_box(&claim))));
    c.bench_function("token_ed25519/verify", |b| {
        b.iter(|| ed.verify(black_box(&signed), now).expect("valid"))
    });
    c.bench_function("token_ed25519/verify_public", |b| {
        b.iter(|| verify_public(black_box(&signed), &public, now).expect("valid"))
    });
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotters backend needs a font registered in this process.
    config = Criterion::default().without_plots();
    targets = tokens
}
criterion_main!(benches);
