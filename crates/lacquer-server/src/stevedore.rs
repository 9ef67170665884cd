//! Storage arguments (`-s`, Varnish's `mgt_stevedore.c`): what each names,
//! checked the way varnishd checks them, so that a bad `-s` stops the start
//! with varnishd's message. The cache (issue P4) sizes its stores from
//! these; until then they give the VCL compiler the `storage.NAME` symbols.
//!
//! `-s [name=]kind[,options]`, where kind is `malloc[,size]` or its alias
//! `default[,size]`. Unnamed stores are `s0`, `s1` … in order; `Transient`
//! always exists and may be given explicitly. `file` and the others are
//! refused: Lacquer has only memory storage so far.

/// One storage, as `-s` gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageSpec {
    /// `storage.NAME` in VCL.
    pub name: String,
    /// The most bytes it may hold; `None` is unbounded, as varnishd's
    /// malloc without a size.
    pub size: Option<u64>,
}

/// The smallest malloc size varnishd takes.
const MIN_MALLOC: u64 = 1024 * 1024;

/// Reads the `-s` arguments in order; answers the stores with `Transient`
/// last (unbounded unless given), or varnishd's error text.
pub fn parse_all(args: &[String]) -> Result<Vec<StorageSpec>, String> {
    let mut out: Vec<StorageSpec> = Vec::new();
    let mut unnamed = 0;
    for arg in args {
        let (name, rest) = match arg.split_once('=') {
            Some((n, r)) if !n.contains(',') => (Some(n), r),
            _ => (None, arg.as_str()),
        };
        let name = match name {
            Some(n) => {
                let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    return Err(format!("invalid -s name \"{n}\"=[...]"));
                }
                n.to_string()
            }
            None => {
                unnamed += 1;
                format!("s{}", unnamed - 1)
            }
        };
        if out.iter().any(|s| s.name == name) {
            return Err(format!("(-s {arg}) '{name}' is already defined"));
        }
        let mut parts = rest.split(',');
        let kind = parts.next().unwrap_or_default();
        let opts: Vec<&str> = parts.collect();
        let size = match kind {
            "malloc" | "default" => {
                if opts.len() > 1 {
                    return Err(format!("(-s{kind}) too many arguments"));
                }
                match opts.first().copied().filter(|s| !s.is_empty()) {
                    None => None,
                    Some(s) => Some(malloc_size(kind, s)?),
                }
            }
            "file" | "deprecated_persistent" | "persistent" | "umem" | "debug" => {
                return Err(format!("storage method \"{kind}\" is not supported by Lacquer; use malloc"));
            }
            _ => return Err(format!("Unknown storage method \"{kind}\"")),
        };
        out.push(StorageSpec { name, size });
    }
    if let Some(i) = out.iter().position(|s| s.name == "Transient") {
        let t = out.remove(i);
        out.push(t);
    } else {
        out.push(StorageSpec { name: "Transient".into(), size: None });
    }
    if out.len() == 1 {
        // No store but Transient: one default store, as varnishd makes.
        out.insert(0, StorageSpec { name: "s0".into(), size: None });
    }
    Ok(out)
}

/// A malloc size: a number with a unit (`k`, `m`, `g`, `t`, `p`, an
/// optional `b`, powers of 1024), at least 1 MiB.
fn malloc_size(kind: &str, text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("(-s{kind}) size \"{text}\": {why}");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad("Invalid number"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult = match unit.strip_suffix('b').unwrap_or(&unit) {
        "" => 1.0,
        "k" => 1024f64,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad("Unknown BYTES unit of measurement ([KMGTP][B])")),
    };
    let bytes = (n * mult) as u64;
    if bytes < MIN_MALLOC {
        return Err(bad("too small, did you forget to specify M or G?"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<StorageSpec>, String> {
        parse_all(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn names(args: &[&str]) -> Vec<String> {
        parse(args).unwrap().into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn names_and_sizes_as_varnishd_gives_them() {
        assert_eq!(names(&[]), ["s0", "Transient"]);
        assert_eq!(names(&["malloc", "default,1G"]), ["s0", "s1", "Transient"]);
        assert_eq!(names(&["big=malloc,1G", "Transient=malloc,10m", "malloc"]), ["big", "s0", "Transient"]);
        let p = parse(&["malloc,100M", "Transient=malloc,10m"]).unwrap();
        assert_eq!(p[0].size, Some(100 << 20));
        assert_eq!(p[1].size, Some(10 << 20));
        assert_eq!(parse(&["malloc,"]).unwrap()[0].size, None);
    }

    #[test]
    fn bad_arguments_get_varnishd_s_words() {
        for (args, msg) in [
            (&["foo"][..], "Unknown storage method \"foo\""),
            (&["malloc,1x"], "(-smalloc) size \"1x\": Unknown BYTES unit of measurement ([KMGTP][B])"),
            (&["malloc,1k"], "(-smalloc) size \"1k\": too small, did you forget to specify M or G?"),
            (&["malloc,-1M"], "(-smalloc) size \"-1M\": Invalid number"),
            (&["malloc,1k,2"], "(-smalloc) too many arguments"),
            (&["a=malloc", "a=malloc"], "(-s a=malloc) 'a' is already defined"),
            (&["1a=malloc"], "invalid -s name \"1a\"=[...]"),
        ] {
            assert_eq!(parse(args).unwrap_err(), msg, "{args:?}");
        }
        assert!(parse(&["file,/tmp/x,1G"]).unwrap_err().contains("not supported"));
    }
}
