//! Writer throughput of the shared-memory log: records per second with two
//! threads each logging typical request records into their own buffer (as
//! two workers would), the ring wrapping many times over.
//!
//! Run with `cargo bench -p lacquer-shm`. Plain `harness = false`: the
//! numbers are printed, nothing is compared.

use std::time::Instant;

use lacquer_shm::{Log, Side, Tag};

const THREADS: u32 = 2;
const TRANSACTIONS: u32 = 200_000;
/// Records per transaction in the loop below.
const PER_TX: u64 = 12;

fn main() {
    let dir = std::env::temp_dir().join(format!("lacquer-shm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = Log::create(&dir, 16 << 20).unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut b = log.buffer();
                for i in 0..TRANSACTIONS {
                    let vxid = 1000 + i * THREADS + t;
                    b.log(Tag::Begin, vxid, Side::Client, format_args!("req {} rxreq", vxid - 1));
                    b.log(
                        Tag::Timestamp,
                        vxid,
                        Side::Client,
                        format_args!("Start: {}.{:06} 0.000000 0.000000", 1_700_000_000 + i, i % 1_000_000),
                    );
                    b.log_str(Tag::ReqStart, vxid, Side::Client, "127.0.0.1 51234 a0");
                    b.log_str(Tag::ReqMethod, vxid, Side::Client, "GET");
                    b.log(Tag::ReqURL, vxid, Side::Client, format_args!("/item/{i}"));
                    b.log_str(Tag::ReqProtocol, vxid, Side::Client, "HTTP/1.1");
                    b.log_str(Tag::ReqHeader, vxid, Side::Client, "Host: www.example.com");
                    b.log_str(Tag::VCL_call, vxid, Side::Client, "RECV");
                    b.log_str(Tag::VCL_return, vxid, Side::Client, "hash");
                    b.log(Tag::RespStatus, vxid, Side::Client, format_args!("{}", 200));
                    b.log(Tag::ReqAcct, vxid, Side::Client, format_args!("{} 0 {} {} {} {}", 79, 79, 256, 8088, 8344));
                    b.log_str(Tag::End, vxid, Side::Client, "");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let records = u64::from(THREADS) * u64::from(TRANSACTIONS) * PER_TX;
    println!(
        "shm writer: {THREADS} threads, {records} records in {secs:.3} s: {:.1} M records/s ({:.0} ns per record per thread)",
        records as f64 / secs / 1e6,
        secs * 1e9 * f64::from(THREADS) / records as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
