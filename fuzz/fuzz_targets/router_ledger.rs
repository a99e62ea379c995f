#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| omniroute::fuzz::router_ledger(data));
