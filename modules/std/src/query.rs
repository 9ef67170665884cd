//! `std.querysort` as Varnish 7.1 does it (`vmod_std_querysort.c`).

/// Sorts the query parameters of `url`: empty ones are dropped, the
/// others ordered by their bytes compared as C `char`s (signed) over the
/// shorter length, ties kept in order.
pub fn sort(url: &[u8]) -> Vec<u8> {
    let Some(q) = url.iter().position(|&c| c == b'?') else { return url.to_vec() };
    let query = &url[q + 1..];
    if !query.contains(&b'&') {
        return url.to_vec();
    }
    let mut params: Vec<&[u8]> = query.split(|&c| c == b'&').filter(|p| !p.is_empty()).collect();
    params.sort_by(|a, b| {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        a.iter().map(|&c| c as i8).cmp(b.iter().map(|&c| c as i8))
    });
    let mut out = url[..=q].to_vec();
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sort;

    /// The cases of Varnish's std_b00007.vtc (querysort).
    #[test]
    fn as_varnish() {
        let cases = [
            ("/foo/bar?t=0&b=0&p=0&c=5", "/foo/bar?b=0&c=5&p=0&t=0"),
            ("/foo/bar?coa=0&co=0", "/foo/bar?co=0&coa=0"),
            ("/foo/bar?a=0&&&&&", "/foo/bar?a=0"),
            ("/foo/bar?&a=0&&&&&z&w&x&", "/foo/bar?a=0&w&x&z"),
            ("/foo/bar?&", "/foo/bar?"),
            ("/foo/bar?t=0", "/foo/bar?t=0"),
            ("/foo/bar", "/foo/bar"),
            ("", ""),
        ];
        for (i, o) in cases {
            assert_eq!(String::from_utf8(sort(i.as_bytes())).unwrap(), o, "{i}");
        }
    }
}
