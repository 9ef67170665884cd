//! vmod_cookie against varnishd 7.1: the interface (read off the JSON
//! spec in varnishd's libvmod_cookie.so, with its `format_rfc1123` alias
//! as a function of its own) and the cookie list's rules. Through a real
//! server: tests/vtc/m00004.vtc.

#[path = "../../vtc/tests/specsig/mod.rs"]
mod specsig;

use lacquer_vmod_cookie::{vmod, CompiledRe, Jar};

const VARNISHD: &[&str] = &[
    "clean() -> VOID",
    "delete(STRING cookiename) -> VOID",
    "filter(STRING filterstring) -> VOID",
    "filter_re(REGEX expression) -> VOID",
    "keep(STRING filterstring) -> VOID",
    "keep_re(REGEX expression) -> VOID",
    "format_date(TIME now, DURATION timedelta) -> STRING",
    "format_rfc1123(TIME now, DURATION timedelta) -> STRING",
    "get(STRING cookiename) -> STRING",
    "get_re(REGEX expression) -> STRING",
    "get_string() -> STRING",
    "isset(STRING cookiename) -> BOOL",
    "parse(STRING cookieheader) -> VOID",
    "set(STRING cookiename, STRING value) -> VOID",
];

#[test]
fn the_interface_is_varnishds() {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    assert_eq!(spec.name, "cookie");
    let mut ours = specsig::lines(&spec);
    let mut theirs: Vec<String> = VARNISHD.iter().map(|s| s.to_string()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

fn jar(header: &str) -> Jar {
    let mut j = Jar::default();
    j.parse(header.as_bytes());
    j
}

fn header(j: &Jar) -> String {
    String::from_utf8(j.to_header()).unwrap()
}

#[test]
fn parses_as_varnishd() {
    assert_eq!(header(&jar("a=1; b=2")), "a=1; b=2;");
    assert_eq!(header(&jar("  a=1;b=x=y")), "a=1; b=x=y;");
    // Empty values are dropped, and a name runs to the first `=`, past `;`.
    assert_eq!(header(&jar("e=; a=1;=")), "a=1;");
    assert_eq!(header(&jar("x; a=1")), "x; a=1;");
    assert_eq!(header(&jar("novalue")), "");
    // A name seen twice keeps its place and takes the last value.
    assert_eq!(header(&jar("a=1; b=2; a=3")), "a=3; b=2;");
    // An empty header leaves the jar alone; another replaces it.
    let mut j = jar("a=1");
    assert_eq!(j.parse(b""), 0);
    assert_eq!(header(&j), "a=1;");
    assert_eq!(j.parse(b"b=2; c="), 2);
    assert_eq!(header(&j), "b=2;");
}

#[test]
fn filters_by_name_lists() {
    let mut j = jar("a=1; b=2; c=3; d=4");
    j.filter_names(b",,b, ,  d,zz,", true);
    assert_eq!(header(&j), "b=2; d=4;");
    j.filter_names(b"d", false);
    assert_eq!(header(&j), "b=2;");
    j.filter_names(b"", false);
    assert_eq!(header(&j), "b=2;");
    j.filter_names(b"", true);
    assert_eq!(header(&j), "");
    let mut j = jar("a=1; b=2");
    j.delete(b"a");
    j.delete(b"zz");
    j.set(b"c", b"3");
    j.set(b"", b"x");
    j.set(b"d", b"");
    assert_eq!(header(&j), "b=2; c=3;");
    assert_eq!(j.get(b"c"), Some(&b"3"[..]));
    assert_eq!(j.get(b"a"), None);
}

#[test]
fn filters_by_regex() {
    let re = CompiledRe::new(b"^b").unwrap();
    let mut j = jar("biscuit=1; apple=2; bun=3");
    j.filter_by(true, |n| re.is_match(n)).unwrap();
    assert_eq!(header(&j), "biscuit=1; bun=3;");
    let un = CompiledRe::new(b"n$").unwrap();
    assert_eq!(j.find_by(|n| un.is_match(n)).unwrap(), Some(&b"3"[..]));
    j.filter_by(false, |n| un.is_match(n)).unwrap();
    assert_eq!(header(&j), "biscuit=1;");
    assert!(CompiledRe::new(b"(").is_err());
}

#[test]
fn formats_dates() {
    assert_eq!(lacquer_vmod_cookie::http_date(86_400.0 * 365.0).unwrap(), "Fri, 01 Jan 1971 00:00:00 GMT");
}
