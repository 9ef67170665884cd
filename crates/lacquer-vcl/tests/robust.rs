//! The compiler never panics: thousands of mutated VCLs (bytes deleted,
//! duplicated, swapped, replaced with VCL's own punctuation) must each
//! either compile or fail with a rendered message.

use lacquer_vcl::{compile_str, Options, BUILTIN_VCL};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"vcl 4.1;
backend b { .host = "127.0.0.1"; .port = "80"; .probe = { .url = "/"; .window = 5; .threshold = 3; } }
acl a { "10.0.0.0"/8; !"10.1.0.0"/16; }
sub f { set req.http.x = regsub(req.url, "^/(a|b)", "\1") + 1 + 2s; }
sub vcl_recv { if (client.ip ~ a && req.url ~ "x" || !req.http.y) { call f; return (synth(404, "x")); } elsif (req.restarts > 1) { return (pass); } }
sub vcl_backend_response { set beresp.ttl = 10s * 2; set beresp.grace -= 1s; return (pass(5s)); }
"#,
    "vcl 4.0;\nbackend default { .host = \"localhost\"; }\nsub vcl_deliver { unset resp.http.x; set resp.http.y = {\"long\nstring\"}; }\n",
];

const PUNCT: &[&[u8]] = &[
    b"{",
    b"}",
    b"(",
    b")",
    b";",
    b"\"",
    b"{\"",
    b"\"}",
    b"\"\"\"",
    b"/*",
    b"//",
    b"#",
    b"+",
    b"-",
    b"==",
    b"~",
    b"!",
    b"&&",
    b".",
    b"=",
    b"1",
    b"1.5",
    b"10s",
    b"req.http.",
    b"vcl_recv",
    b"sub",
    b"if",
    b"else",
    b"C{",
    b"\t",
    b"\n",
    b"\xff",
    b"return",
    b"(synth(",
    b"include",
    b"backend",
];

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 if !v.is_empty() => {
                let n = 1 + rng.below(8);
                let end = (at + n).min(v.len());
                v.drain(at.min(end)..end);
            }
            1 => {
                let p = PUNCT[rng.below(PUNCT.len())];
                v.splice(at..at, p.iter().copied());
            }
            2 if v.len() > 2 => {
                let a = rng.below(v.len());
                let b = rng.below(v.len());
                v.swap(a, b);
            }
            _ => {
                let n = rng.below(16);
                let end = (at + n).min(v.len());
                let dup: Vec<u8> = v[at.min(end)..end].to_vec();
                v.splice(at..at, dup);
            }
        }
    }
    v
}

#[test]
fn mutated_vcl_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = Options::default();
    let mut seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    seeds.push(format!("vcl 4.1;\nbackend x {{ .host = \"127.0.0.1\"; }}\n{}", &BUILTIN_VCL[9..]).into_bytes());
    let (mut ok, mut err) = (0, 0);
    for i in 0..2000 {
        let seed = &seeds[i % seeds.len()];
        let src = mutate(&mut rng, seed);
        let text = String::from_utf8_lossy(&src).into_owned();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compile_str("<fuzz>", &text, &opts).map(|_| ()).map_err(|e| e.to_string())
        }));
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(msg)) => {
                assert!(!msg.is_empty(), "an error without a message for:\n{text}");
                err += 1;
            }
            Err(_) => panic!("the compiler panicked on:\n{text}"),
        }
    }
    assert!(ok > 0 && err > 0, "mutations should both keep and break VCLs ({ok} ok, {err} errors)");
}
