//! Times the head parser and the chunked decoder.
//!
//! A plain timing loop (no harness): each figure is the median over batches
//! of the time per operation. Run with `cargo bench -p lacquer-http`.

use std::hint::black_box;
use std::time::Instant;

use lacquer_http::{BodyDecoder, ChunkedEncoder, Framing, Head, Limits, Parsed};

/// A request head as a current browser sends it: about 500 bytes, 10 headers.
const BROWSER: &[u8] = b"GET /wp-content/uploads/2024/03/banner-home.jpg?ver=6.4.3 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0\r\n\
Accept: image/avif,image/webp,*/*\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: _ga=GA1.2.1234567890.1700000000; session=abcdef0123456789\r\n\
Sec-Fetch-Dest: image\r\n\
If-None-Match: \"5f3c-61b0b3b5a2e40\"\r\n\
\r\n";

/// Runs `f` in batches of `per_batch` and prints the median nanoseconds per call.
fn bench(name: &str, per_batch: u32, mut f: impl FnMut()) {
    for _ in 0..per_batch {
        f();
    }
    let mut samples: Vec<f64> = (0..31)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!("{name:40} {:8.1} ns", samples[samples.len() / 2]);
}

fn main() {
    let limits = Limits::REQUEST;
    println!("browser head: {} bytes", BROWSER.len());
    let mut head = Head::new();
    bench("parse_request (browser head, reused)", 20_000, || {
        head.clear();
        let r = head.parse_request(black_box(BROWSER), &limits);
        assert_eq!(r, Ok(Parsed::Complete(BROWSER.len())));
        black_box(&head);
    });
    bench("parse_request (browser head, new Head)", 20_000, || {
        let mut head = Head::new();
        let r = head.parse_request(black_box(BROWSER), &limits);
        let _ = black_box((r, &head));
    });
    head.clear();
    head.parse_request(BROWSER, &limits).unwrap();
    bench("header lookup (last header)", 100_000, || {
        black_box(head.header(black_box(BROWSER), b"if-none-match"));
    });
    let mut out = Vec::with_capacity(1024);
    bench("write_to (browser head)", 20_000, || {
        out.clear();
        head.write_to(black_box(BROWSER), &mut out);
        black_box(&out);
    });

    let mut body = Vec::new();
    let mut enc = ChunkedEncoder::new();
    let piece = vec![b'x'; 4096];
    for _ in 0..256 {
        enc.encode(&piece, &mut body);
    }
    enc.finish(&mut body);
    bench("chunked decode (1 MiB in 4 KiB chunks)", 200, || {
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let mut rest = black_box(&body[..]);
        let mut total = 0;
        while !rest.is_empty() {
            let d = dec.decode(rest).unwrap();
            total += d.data.len();
            rest = &rest[d.consumed..];
            if d.done {
                break;
            }
        }
        assert_eq!(total, 1 << 20);
    });
}
