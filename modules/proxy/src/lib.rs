//! Varnish 7.1's vmod_proxy for Lacquer: what the proxy in front (a TLS
//! terminator such as HAProxy or Hitch) told Lacquer about the client
//! connection in the TLVs of its PROXY version 2 header.
//!
//! The host keeps the TLVs of the header a `PROXY` listener's connection
//! opened with ([`Host::proxy_tlvs`](lacquer_module::Host::proxy_tlvs));
//! this module only reads them. A TLV is a type byte, a 16-bit big-endian
//! length and the value. The `SSL` TLV (type 0x20) holds a client flags
//! byte, a 32-bit verify result and TLVs of its own (TLS version, client
//! certificate common name, cipher, signature and key algorithms).
//!
//! As in varnishd, a missing TLV is a NULL string (the empty string where
//! a header is set), `false` for the flags and 0 (`X509_V_OK`) for the
//! verify result.

/// `PP2_TYPE_ALPN`: the protocol the client negotiated.
const ALPN: u8 = 0x01;
/// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
const AUTHORITY: u8 = 0x02;
/// `PP2_TYPE_SSL`: the TLS facts, with sub-TLVs.
const SSL: u8 = 0x20;
/// `PP2_SUBTYPE_SSL_VERSION`, `_CN`, `_CIPHER`, `_SIG_ALG`, `_KEY_ALG`.
const SSL_VERSION: u8 = 0x21;
const SSL_CN: u8 = 0x22;
const SSL_CIPHER: u8 = 0x23;
const SSL_SIG_ALG: u8 = 0x24;
const SSL_KEY_ALG: u8 = 0x25;
/// The `SSL` TLV's client flags: `PP2_CLIENT_SSL`, `_CERT_CONN`, `_CERT_SESS`.
const CLIENT_SSL: u8 = 0x01;
const CLIENT_CERT_CONN: u8 = 0x02;
const CLIENT_CERT_SESS: u8 = 0x04;

/// The value of the first TLV of type `typ` in `tlvs`; `None` when there
/// is none or the list is cut short (the host checked it, but a module
/// does not rely on that).
pub fn find(tlvs: &[u8], typ: u8) -> Option<&[u8]> {
    let mut rest = tlvs;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + len)?;
        if rest[0] == typ {
            return Some(value);
        }
        rest = &rest[3 + len..];
    }
    None
}

/// The `SSL` TLV's parts: client flags, verify result and its sub-TLVs.
pub fn ssl(tlvs: &[u8]) -> Option<(u8, u32, &[u8])> {
    let v = find(tlvs, SSL)?;
    let verify = u32::from_be_bytes(v.get(1..5)?.try_into().ok()?);
    Some((v[0], verify, &v[5..]))
}

/// The sub-TLV `typ` of the `SSL` TLV.
pub fn ssl_sub(tlvs: &[u8], typ: u8) -> Option<&[u8]> {
    find(ssl(tlvs)?.2, typ)
}

#[lacquer_module::module(name = "proxy")]
pub mod vmod {
    //! Varnish Module to extract TLV attributes from PROXYv2: what the
    //! proxy in front of Lacquer knew about the client's TLS connection.

    use lacquer_module::Ctx;

    use super::*;

    fn string(ctx: &Ctx, typ: u8) -> Option<Vec<u8>> {
        find(&ctx.proxy_tlvs()?, typ).map(<[u8]>::to_vec)
    }

    fn ssl_string(ctx: &Ctx, typ: u8) -> Option<Vec<u8>> {
        ssl_sub(&ctx.proxy_tlvs()?, typ).map(<[u8]>::to_vec)
    }

    fn client_flag(ctx: &Ctx, flag: u8) -> bool {
        ctx.proxy_tlvs().and_then(|t| ssl(&t).map(|s| s.0 & flag != 0)).unwrap_or(false)
    }

    /// The ALPN token the client negotiated with the proxy (`h2`,
    /// `http/1.1` …), or NULL.
    pub fn alpn(ctx: &mut Ctx) -> Option<Vec<u8>> {
        string(ctx, ALPN)
    }

    /// The authority (the TLS SNI host name) the client asked the proxy
    /// for, or NULL.
    pub fn authority(ctx: &mut Ctx) -> Option<Vec<u8>> {
        string(ctx, AUTHORITY)
    }

    /// Whether the client connected to the proxy over TLS.
    pub fn is_ssl(ctx: &mut Ctx) -> bool {
        client_flag(ctx, CLIENT_SSL)
    }

    /// Whether the client presented a certificate at least once over the
    /// TLS session the connection belongs to.
    pub fn client_has_cert_sess(ctx: &mut Ctx) -> bool {
        client_flag(ctx, CLIENT_CERT_SESS)
    }

    /// Whether the client presented a certificate over this connection.
    pub fn client_has_cert_conn(ctx: &mut Ctx) -> bool {
        client_flag(ctx, CLIENT_CERT_CONN)
    }

    /// The result of verifying the client's certificate: 0
    /// (`X509_V_OK`) when it verified, or when there was no TLS.
    pub fn ssl_verify_result(ctx: &mut Ctx) -> i64 {
        ctx.proxy_tlvs().and_then(|t| ssl(&t).map(|s| i64::from(s.1))).unwrap_or(0)
    }

    /// The TLS version (`TLSv1.3` …), or NULL.
    pub fn ssl_version(ctx: &mut Ctx) -> Option<Vec<u8>> {
        ssl_string(ctx, SSL_VERSION)
    }

    /// The common name of the client's certificate, or NULL.
    pub fn client_cert_cn(ctx: &mut Ctx) -> Option<Vec<u8>> {
        ssl_string(ctx, SSL_CN)
    }

    /// The cipher the TLS connection uses, or NULL.
    pub fn ssl_cipher(ctx: &mut Ctx) -> Option<Vec<u8>> {
        ssl_string(ctx, SSL_CIPHER)
    }

    /// The algorithm that signed the proxy's certificate (`RSA-SHA256`
    /// …), or NULL.
    pub fn cert_sign(ctx: &mut Ctx) -> Option<Vec<u8>> {
        ssl_string(ctx, SSL_SIG_ALG)
    }

    /// The algorithm of the proxy's certificate's key (`EC256` …), or NULL.
    pub fn cert_key(ctx: &mut Ctx) -> Option<Vec<u8>> {
        ssl_string(ctx, SSL_KEY_ALG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlvs_and_ssl_sub_tlvs() {
        let mut tlvs = vec![ALPN, 0, 2, b'h', b'2'];
        tlvs.extend([SSL, 0, 12, CLIENT_SSL, 0, 0, 0, 7, SSL_VERSION, 0, 4]);
        tlvs.extend(b"TLS1");
        assert_eq!(find(&tlvs, ALPN), Some(&b"h2"[..]));
        assert_eq!(find(&tlvs, AUTHORITY), None);
        assert_eq!(ssl(&tlvs).map(|s| (s.0, s.1)), Some((CLIENT_SSL, 7)));
        assert_eq!(ssl_sub(&tlvs, SSL_VERSION), Some(&b"TLS1"[..]));
        assert_eq!(ssl_sub(&tlvs, SSL_CN), None);
        // A length running past the end finds nothing.
        assert_eq!(find(&[ALPN, 0, 9, b'h'], ALPN), None);
    }
}
