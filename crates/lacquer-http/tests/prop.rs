//! Property tests, driven by a small deterministic generator: random valid
//! messages must survive serialising, re-parsing at random split points and
//! decoding; random mutations of them must never panic, and feeding bytes
//! in pieces must always agree with feeding them at once.

use lacquer_http::{BodyDecoder, BodyError, ChunkedEncoder, Framing, Head, HeadError, Limits, Parsed, Side};

/// SplitMix64: tiny, fast and good enough to drive tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const TCHARS: &[u8] = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn token(rng: &mut Rng, max: usize) -> Vec<u8> {
    (0..1 + rng.below(max)).map(|_| rng.pick(TCHARS)).collect()
}

/// A header value: visible ASCII, bytes ≥ 0x80, inner spaces and tabs, no
/// blanks at either end (the parser trims those).
fn value(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(40);
    let mut v: Vec<u8> = (0..n)
        .map(|_| match rng.below(10) {
            0 => b' ',
            1 => b'\t',
            2 => 0x80 + rng.below(128) as u8,
            _ => 0x21 + rng.below(94) as u8,
        })
        .collect();
    while v.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        v.remove(0);
    }
    while v.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
        v.pop();
    }
    v
}

/// A message as generated: the parts the parser must give back.
#[derive(Debug, Clone)]
struct Message {
    side: Side,
    line: [Vec<u8>; 3],
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
    wire: Vec<u8>,
}

fn eol(rng: &mut Rng) -> &'static [u8] {
    if rng.chance(5) {
        b"\n"
    } else {
        b"\r\n"
    }
}

fn gen_message(rng: &mut Rng, side: Side) -> Message {
    let proto = match side {
        Side::Request => rng.pick(&[&b"HTTP/1.1"[..], b"HTTP/1.0", b"http/1.1"]).to_vec(),
        Side::Response => rng.pick(&[&b"HTTP/1.1"[..], b"HTTP/1.0"]).to_vec(),
    };
    let status = rng.pick(&[200u16, 201, 203, 206, 299, 301, 404, 500, 999]);
    let line = match side {
        Side::Request => {
            let method =
                if rng.chance(2) { rng.pick(&[&b"GET"[..], b"POST", b"HEAD"]).to_vec() } else { token(rng, 8) };
            let url: Vec<u8> = (0..1 + rng.below(60))
                .map(|_| if rng.chance(20) { 0x80 + rng.below(128) as u8 } else { 0x21 + rng.below(94) as u8 })
                .collect();
            [method, url, proto]
        }
        Side::Response => [proto, status.to_string().into_bytes(), value(rng)],
    };
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..rng.below(20) {
        let mut name = token(rng, 20);
        let lower = name.to_ascii_lowercase();
        if lower == b"content-length" || lower == b"transfer-encoding" || lower == b"connection" {
            name.push(b'x');
        }
        headers.push((name, value(rng)));
    }
    let body: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
    let is_post = side == Side::Request && line[0] == b"POST";
    let framing = match rng.below(4) {
        0 if body.is_empty() && !(is_post && line[2] != b"HTTP/1.1") => Framing::None,
        0 | 1 => Framing::Length(body.len() as u64),
        2 => Framing::Chunked,
        _ if side == Side::Response => Framing::Eof,
        _ => Framing::Chunked,
    };
    let at = rng.below(headers.len() + 1);
    match framing {
        Framing::Length(n) => headers.insert(at, (b"Content-Length".to_vec(), n.to_string().into_bytes())),
        Framing::Chunked => headers.insert(at, (b"transfer-encoding".to_vec(), b"chunked".to_vec())),
        _ => {}
    }
    let body = if framing == Framing::None { Vec::new() } else { body };

    let mut wire = Vec::new();
    if side == Side::Request && rng.chance(10) {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(&line[0]);
    wire.extend_from_slice(rng.pick(&[&b" "[..], b"  ", b"\t"]));
    wire.extend_from_slice(&line[1]);
    if !(side == Side::Response && line[2].is_empty() && rng.chance(2)) {
        wire.push(b' ');
        wire.extend_from_slice(&line[2]);
    }
    wire.extend_from_slice(eol(rng));
    for (n, v) in &headers {
        wire.extend_from_slice(n);
        wire.extend_from_slice(rng.pick(&[&b": "[..], b":", b":\t ", b":  "]));
        wire.extend_from_slice(v);
        if rng.chance(8) {
            wire.extend_from_slice(b" \t");
        }
        wire.extend_from_slice(eol(rng));
    }
    wire.extend_from_slice(eol(rng));
    match framing {
        Framing::Chunked => {
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len().min(70));
                let size = match rng.below(4) {
                    0 => format!("{n:X}"),
                    1 => format!("000{n:x} "),
                    _ => format!("{n:x}"),
                };
                wire.extend_from_slice(size.as_bytes());
                wire.extend_from_slice(eol(rng));
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(eol(rng));
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0");
            wire.extend_from_slice(eol(rng));
            wire.extend_from_slice(eol(rng));
        }
        _ => wire.extend_from_slice(&body),
    }
    Message { side, line, status, headers, body, framing, wire }
}

fn parse(head: &mut Head, side: Side, buf: &[u8], limits: &Limits) -> Result<Parsed, HeadError> {
    match side {
        Side::Request => head.parse_request(buf, limits),
        Side::Response => head.parse_response(buf, limits),
    }
}

/// Feeds `buf` to a fresh head in growing prefixes cut at `cuts`, as bytes
/// would arrive, and returns the final answer.
fn parse_pieces(head: &mut Head, side: Side, buf: &[u8], cuts: &[usize]) -> Result<Parsed, HeadError> {
    head.clear();
    let limits = match side {
        Side::Request => Limits::REQUEST,
        Side::Response => Limits::RESPONSE,
    };
    for &c in cuts {
        match parse(head, side, &buf[..c], &limits) {
            Ok(Parsed::Partial) => {}
            other => return other,
        }
    }
    parse(head, side, buf, &limits)
}

fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// Decodes `input` in pieces cut at `cuts`, returning the body bytes, how
/// much input was used, and the outcome (`Ok(true)` when complete).
fn decode_pieces(
    framing: Framing,
    input: &[u8],
    cuts: &[usize],
    eof: bool,
) -> (Vec<u8>, usize, Result<bool, BodyError>) {
    let mut dec = BodyDecoder::new(framing);
    let mut out = Vec::new();
    let mut pos = 0;
    for &limit in cuts.iter().chain(std::iter::once(&input.len())) {
        while pos < limit.max(pos) || (pos == limit && dec.is_done()) {
            match dec.decode(&input[pos..limit]) {
                Ok(d) => {
                    out.extend_from_slice(d.data);
                    pos += d.consumed;
                    if d.done {
                        return (out, pos, Ok(true));
                    }
                    if d.consumed == 0 {
                        break;
                    }
                }
                // Where in the framing an error is noticed depends on the cuts.
                Err(e) => return (out, 0, Err(e)),
            }
        }
    }
    if eof {
        return (out, pos, dec.finish().map(|_| true));
    }
    (out, pos, Ok(dec.is_done()))
}

fn check_head(m: &Message, head: &Head, buf: &[u8]) {
    match m.side {
        Side::Request => {
            assert_eq!(head.method(buf), &m.line[0][..]);
            assert_eq!(head.url(buf), &m.line[1][..]);
            assert_eq!(head.proto(buf), &m.line[2][..]);
        }
        Side::Response => {
            assert_eq!(head.proto(buf), &m.line[0][..]);
            assert_eq!(head.status(), m.status);
            assert_eq!(head.reason(buf), &m.line[2][..]);
        }
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = head.headers(buf).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    assert_eq!(got, m.headers);
    for (n, _) in &m.headers {
        let first = m.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| &v[..]);
        assert_eq!(head.header(buf, &n.to_ascii_uppercase()), first);
    }
}

#[test]
fn valid_messages_round_trip() {
    let mut rng = Rng(0x5eed_1234);
    let mut head = Head::new();
    for round in 0..3000 {
        let side = if round % 3 == 2 { Side::Response } else { Side::Request };
        let m = gen_message(&mut rng, side);
        let mut wire = m.wire.clone();
        // A pipelined request follows, unless the body runs until close.
        let next =
            if m.framing != Framing::Eof && side == Side::Request { &b"GET /next HTTP/1.1\r\n\r\n"[..] } else { b"" };
        wire.extend_from_slice(next);
        let cuts = random_cuts(&mut rng, wire.len());
        let len = match parse_pieces(&mut head, side, &wire, &cuts) {
            Ok(Parsed::Complete(len)) => len,
            other => panic!("round {round}: {other:?} for {:?}", String::from_utf8_lossy(&m.wire)),
        };
        assert!(head.fields().iter().all(|f| !f.name.is_edited() && !f.value.is_edited()));
        check_head(&m, &head, &wire);
        assert_eq!(head.framing(), m.framing, "round {round}");

        let rest = &wire[len..];
        let cuts = random_cuts(&mut rng, rest.len());
        let eof = m.framing == Framing::Eof;
        let (body, used, outcome) = decode_pieces(head.framing(), rest, &cuts, eof);
        assert_eq!(outcome, Ok(true), "round {round}");
        assert_eq!(body, m.body, "round {round}");
        assert_eq!(&rest[used..], next, "round {round}");

        // Writing the head back and parsing that gives the same head.
        let mut out = Vec::new();
        head.write_to(&wire, &mut out);
        let mut again = Head::new();
        assert_eq!(parse(&mut again, side, &out, &Limits::REQUEST), Ok(Parsed::Complete(out.len())));
        check_head(&m, &again, &out);

        // Re-encoding the body in chunks and decoding it gives it back.
        let mut enc = ChunkedEncoder::new();
        let mut chunked = Vec::new();
        for piece in m.body.chunks(1 + rng.below(50)) {
            enc.encode(piece, &mut chunked);
        }
        enc.finish(&mut chunked);
        let cuts = random_cuts(&mut rng, chunked.len());
        let (body, used, outcome) = decode_pieces(Framing::Chunked, &chunked, &cuts, false);
        assert_eq!((body, used, outcome), (m.body.clone(), chunked.len(), Ok(true)));
    }
}

#[test]
fn edits_round_trip() {
    let mut rng = Rng(77);
    for _ in 0..500 {
        let m = gen_message(&mut rng, Side::Request);
        let mut head = Head::new();
        let buf = &m.wire;
        assert!(matches!(head.parse_request(buf, &Limits::REQUEST), Ok(Parsed::Complete(_))));
        let mut want = m.headers.clone();
        for _ in 0..rng.below(6) {
            let name = if !want.is_empty() && rng.chance(2) {
                want[rng.below(want.len())].0.clone()
            } else {
                token(&mut rng, 10)
            };
            // Editing the framing headers can make a head that is rightly refused.
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding") {
                continue;
            }
            match rng.below(3) {
                0 => {
                    head.unset(buf, &name);
                    want.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                }
                1 => {
                    let v = value(&mut rng);
                    head.set(buf, &name, &v);
                    want.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                    want.push((name, v));
                }
                _ => {
                    let v = value(&mut rng);
                    head.append(&name, &v);
                    want.push((name, v));
                }
            }
        }
        let got: Vec<(Vec<u8>, Vec<u8>)> = head.headers(buf).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(got, want);
        let mut out = Vec::new();
        head.write_to(buf, &mut out);
        let mut again = Head::new();
        assert_eq!(again.parse_request(&out, &Limits::REQUEST).map(|_| ()), Ok(()));
        let got: Vec<(Vec<u8>, Vec<u8>)> = again.headers(&out).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(got, want);
    }
}

/// Damages `wire` in one of several ways that matter to a parser.
fn mutate(rng: &mut Rng, wire: &mut Vec<u8>) {
    const NASTY: &[u8] = b"\r\n\0 \t:;0fF-+x\x7f\x80\xff";
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(wire.len() + 1);
        match rng.below(6) {
            0 if at < wire.len() => wire[at] = rng.pick(NASTY),
            1 => wire.insert(at, rng.pick(NASTY)),
            2 if at < wire.len() => {
                wire.remove(at);
            }
            3 if at < wire.len() => wire[at] ^= 1 << rng.below(8),
            4 => {
                let end = (at + rng.below(40)).min(wire.len());
                let piece = wire[at..end].to_vec();
                let to = rng.below(wire.len() + 1);
                wire.splice(to..to, piece);
            }
            _ => {
                let junk: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                wire.splice(at..at, junk);
            }
        }
    }
}

#[test]
fn mutations_never_panic_and_pieces_agree() {
    let mut rng = Rng(0xdead_beef);
    let mut head = Head::new();
    let mut whole = Head::new();
    let limits = Limits { hdr_len: 64, size: 600, max_hdr: 12 };
    for _ in 0..20_000 {
        let side = if rng.chance(3) { Side::Response } else { Side::Request };
        let mut wire = gen_message(&mut rng, side).wire;
        mutate(&mut rng, &mut wire);
        // Pieces must agree with the whole, under default and tight limits.
        for limits in [Limits::REQUEST, limits] {
            whole.clear();
            let once = parse(&mut whole, side, &wire, &limits);
            head.clear();
            let mut pieced = Ok(Parsed::Partial);
            for c in random_cuts(&mut rng, wire.len()).into_iter().chain(std::iter::once(wire.len())) {
                pieced = parse(&mut head, side, &wire[..c], &limits);
                if pieced != Ok(Parsed::Partial) {
                    break;
                }
            }
            assert_eq!(once, pieced, "{:?}", String::from_utf8_lossy(&wire));
            if let Ok(Parsed::Complete(len)) = once {
                let mut out = Vec::new();
                whole.write_to(&wire, &mut out);
                let _ = whole.header(&wire, b"host");
                let rest = &wire[len..];
                let a = decode_pieces(whole.framing(), rest, &[], true);
                let b = decode_pieces(whole.framing(), rest, &random_cuts(&mut rng, rest.len()), true);
                assert_eq!(a, b);
            }
        }
        // Any bytes at all into each kind of decoder.
        for framing in [Framing::Chunked, Framing::Length(rng.below(50) as u64), Framing::Eof] {
            let a = decode_pieces(framing, &wire, &[], false);
            let b = decode_pieces(framing, &wire, &random_cuts(&mut rng, wire.len()), false);
            assert_eq!(a, b);
            let t = decode_pieces(framing, &wire, &[], false);
            let _ = BodyDecoder::new(framing).allow_trailers(true).decode(&wire);
            assert_eq!(a, t);
        }
    }
}
