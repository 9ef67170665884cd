//! C's `printf("%g")`, which varnishd's `debug.argtest` prints REALs with.

/// `v` as `printf("%g", v)` prints it: six significant digits, trailing
/// zeros dropped, in exponent form when the exponent is below -4 or at
/// least 6.
pub fn c_g(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rounded to six significant digits, the exponent decides the form.
    let e = format!("{v:.5e}");
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..6).contains(&exp) {
        let mant = strip(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    strip(&format!("{v:.*}", (5 - exp) as usize)).to_string()
}

/// Drops trailing zeros after a decimal point, and the point if bare.
fn strip(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::c_g;

    /// What glibc's printf("%g") prints for each.
    #[test]
    fn as_printf_prints() {
        for (v, want) in [
            (2.0, "2"),
            (2.1, "2.1"),
            (-2.2, "-2.2"),
            (0.5, "0.5"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.23457e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456789, "123.457"),
            (999999.5, "1e+06"),
            (0.0, "0"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(c_g(v), want, "{v}");
        }
    }
}
