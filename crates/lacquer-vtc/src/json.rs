//! Just enough JSON to tell whether a CLI answer is JSON (`-clijson`, as
//! varnishtest's `vjsn_parse` tells it): one value, with blanks around.

/// Checks that `text` is one JSON value; the error says where it is not.
pub fn validate(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    value(b, &mut i, 0)?;
    blanks(b, &mut i);
    if i != b.len() {
        return Err(format!("garbage after the value at byte {i}"));
    }
    Ok(())
}

fn blanks(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize, depth: usize) -> Result<(), String> {
    if depth > 256 {
        return Err("nested too deeply".into());
    }
    blanks(b, i);
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            blanks(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(());
            }
            loop {
                blanks(b, i);
                string(b, i)?;
                blanks(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!("expected ':' at byte {i}"));
                }
                *i += 1;
                value(b, i, depth + 1)?;
                blanks(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(());
                    }
                    _ => return Err(format!("expected ',' or '}}' at byte {i}")),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            blanks(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(());
            }
            loop {
                value(b, i, depth + 1)?;
                blanks(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(());
                    }
                    _ => return Err(format!("expected ',' or ']' at byte {i}")),
                }
            }
        }
        Some(b'"') => string(b, i),
        Some(b't') => word(b, i, b"true"),
        Some(b'f') => word(b, i, b"false"),
        Some(b'n') => word(b, i, b"null"),
        Some(b'-' | b'0'..=b'9') => number(b, i),
        _ => Err(format!("no value at byte {i}")),
    }
}

fn word(b: &[u8], i: &mut usize, w: &[u8]) -> Result<(), String> {
    if b[*i..].starts_with(w) {
        *i += w.len();
        Ok(())
    } else {
        Err(format!("bad word at byte {i}"))
    }
}

fn string(b: &[u8], i: &mut usize) -> Result<(), String> {
    if b.get(*i) != Some(&b'"') {
        return Err(format!("expected a string at byte {i}"));
    }
    *i += 1;
    while let Some(&c) = b.get(*i) {
        *i += 1;
        match c {
            b'"' => return Ok(()),
            b'\\' => match b.get(*i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 1,
                Some(b'u') if b.len() >= *i + 5 && b[*i + 1..*i + 5].iter().all(u8::is_ascii_hexdigit) => *i += 5,
                _ => return Err(format!("bad escape at byte {i}")),
            },
            c if c < 0x20 => return Err(format!("control character in a string at byte {i}")),
            _ => {}
        }
    }
    Err("unterminated string".into())
}

fn number(b: &[u8], i: &mut usize) -> Result<(), String> {
    let start = *i;
    if b.get(*i) == Some(&b'-') {
        *i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    if !digits(i) {
        return Err(format!("bad number at byte {start}"));
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if !digits(i) {
            return Err(format!("bad number at byte {start}"));
        }
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if !digits(i) {
            return Err(format!("bad number at byte {start}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn json_is_told_from_text() {
        assert!(
            validate(r#"[ 2, ["vcl.list", "-j"], 1795.5, {"a": [true, null, -1.5e3], "b": "x\"y\u00e9"} ]"#).is_ok()
        );
        assert!(validate("  {}\n").is_ok());
        assert!(validate("Active 0 warm warm vcl1").is_err());
        assert!(validate("[1, 2").is_err());
        assert!(validate("[1] x").is_err());
        assert!(validate(r#"{"a" 1}"#).is_err());
    }
}
