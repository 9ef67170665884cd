//! vmod_blob against varnishd 7.1: the interface (read off the JSON spec
//! in varnishd's libvmod_blob.so) and the encodings, on values read off
//! varnishd. Through a real server: tests/vtc/m00005.vtc.

#[path = "../../vtc/tests/specsig/mod.rs"]
mod specsig;

use lacquer_vmod_blob::{vmod, Encoding};

const ENC: &str = "ENUM{IDENTITY,BASE64,BASE64URL,BASE64URLNOPAD,BASE64CF,HEX,URL}";
const CASE: &str = "ENUM{LOWER,UPPER,DEFAULT}";

#[test]
fn the_interface_is_varnishds() {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    assert_eq!(spec.name, "blob");
    let varnishd = [
        format!("decode({ENC} decoding=IDENTITY, INT length=0, STRANDS encoded) -> BLOB"),
        format!("encode({ENC} encoding=IDENTITY, {CASE} case=DEFAULT, BLOB blob) -> STRING"),
        format!(
            "transcode({ENC} decoding=IDENTITY, {ENC} encoding=IDENTITY, {CASE} case=DEFAULT, INT length=0, STRANDS encoded) -> STRING"
        ),
        "same(BLOB b1, BLOB b2) -> BOOL".to_string(),
        "equal(BLOB b1, BLOB b2) -> BOOL".to_string(),
        "length(BLOB blob) -> INT".to_string(),
        "sub(BLOB blob, BYTES length, BYTES offset=0) -> BLOB".to_string(),
        format!("blob({ENC} decoding=IDENTITY, STRANDS encoded) -> OBJECT"),
        "blob.get() -> BLOB".to_string(),
        format!("blob.encode({ENC} encoding=IDENTITY, {CASE} case=DEFAULT) -> STRING"),
    ];
    let mut ours = specsig::lines(&spec);
    let mut theirs: Vec<String> = varnishd.to_vec();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn transcodes_as_varnishd() {
    let t = |dec: Encoding, enc: Encoding, s: &str| {
        let b = dec.decode(&[Some(s.as_bytes())], None).unwrap();
        String::from_utf8(enc.encode(&b, false)).unwrap()
    };
    use Encoding::*;
    assert_eq!(t(Identity, Base64, "The quick brown fox"), "VGhlIHF1aWNrIGJyb3duIGZveA==");
    assert_eq!(t(Identity, Base64UrlNoPad, "The quick brown fox"), "VGhlIHF1aWNrIGJyb3duIGZveA");
    assert_eq!(t(Hex, Base64Cf, "fbff"), "-~8_");
    assert_eq!(t(Identity, Url, "a/b c?d=é"), "a%2fb%20c%3fd%3d%c3%a9");
    assert_eq!(t(Url, Identity, "%C3%A9+x"), "é+x");
    assert_eq!(t(Base64, Hex, "3q2+7w=="), "deadbeef");
}
