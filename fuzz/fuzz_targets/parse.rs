//! Feeds arbitrary bytes, split at arbitrary points, to the head parsers and
//! the body decoders.
//!
//! The first two bytes choose the split points and the limits; the rest is
//! the message. Besides "never panic", it checks that feeding the bytes in
//! pieces gives the same answer as feeding them at once, for heads and for
//! bodies.
//!
//! Run with `cargo +nightly fuzz run parse` from the repository root.
//! Without cargo-fuzz, `cargo run --release -- FILE...` in `fuzz/` runs the
//! same checks over files (a `#[cfg(fuzzing)]` shim picks the entry point).

#![cfg_attr(fuzzing, no_main)]

use lacquer_http::{BodyDecoder, Framing, Head, HeadError, Limits, Parsed};

fn parse(head: &mut Head, response: bool, buf: &[u8], limits: &Limits) -> Result<Parsed, HeadError> {
    if response {
        head.parse_response(buf, limits)
    } else {
        head.parse_request(buf, limits)
    }
}

/// Decodes `input` cut every `step` bytes; returns the body and the outcome.
fn decode(framing: Framing, input: &[u8], step: usize) -> (Vec<u8>, Option<bool>) {
    let mut dec = BodyDecoder::new(framing);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut limit = 0;
    while limit < input.len() || pos < limit {
        limit = (limit + step).min(input.len()).max(pos);
        loop {
            match dec.decode(&input[pos..limit]) {
                Ok(d) => {
                    out.extend_from_slice(d.data);
                    pos += d.consumed;
                    if d.done {
                        return (out, Some(true));
                    }
                    if d.consumed == 0 || pos == limit {
                        break;
                    }
                }
                Err(_) => return (out, None),
            }
        }
        if limit == input.len() {
            break;
        }
    }
    (out, Some(dec.is_done()))
}

fn run(data: &[u8]) {
    let [ctl, step, msg @ ..] = data else { return };
    let response = ctl & 1 != 0;
    let limits = if ctl & 2 != 0 { Limits { hdr_len: 40, size: 256, max_hdr: 8 } } else { Limits::REQUEST };
    let step = usize::from(*step).max(1);

    let mut whole = Head::new();
    let once = parse(&mut whole, response, msg, &limits);
    let mut pieced = Head::new();
    let mut got = Ok(Parsed::Partial);
    let mut end = 0;
    while got == Ok(Parsed::Partial) && end < msg.len() {
        end = (end + step).min(msg.len());
        got = parse(&mut pieced, response, &msg[..end], &limits);
    }
    if end == msg.len() || got != Ok(Parsed::Partial) {
        assert_eq!(once, got);
    }
    let body = match once {
        Ok(Parsed::Complete(len)) => {
            let mut out = Vec::new();
            whole.write_to(msg, &mut out);
            let mut again = Head::new();
            let relimits = Limits { size: usize::MAX, hdr_len: usize::MAX, max_hdr: usize::MAX };
            let _ = parse(&mut again, response, &out, &relimits);
            let _ = whole.header(msg, b"host");
            whole.set(msg, b"x-fuzz", b"1");
            whole.unset(msg, b"content-length");
            out.clear();
            whole.write_to(msg, &mut out);
            &msg[len..]
        }
        _ => msg,
    };
    for framing in [Framing::Chunked, Framing::Length(u64::from(ctl >> 2)), Framing::Eof, Framing::None] {
        assert_eq!(decode(framing, body, body.len().max(1)), decode(framing, body, step));
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));

#[cfg(not(fuzzing))]
fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).expect("readable input file");
        run(&data);
    }
}
