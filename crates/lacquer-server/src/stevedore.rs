//! Storage arguments (`-s`, Varnish's `mgt_stevedore.c`, `storage_file.c`'s
//! `smf_init`): what each names, checked the way varnishd checks them, so
//! that a bad `-s` stops the start with varnishd's message. The server
//! makes the cache's stores from these ([`open`]), and they give the VCL
//! compiler the `storage.NAME` symbols.
//!
//! `-s [name=]kind[,options]`, where kind is `malloc[,size]` (or its alias
//! `default[,size]`) or `file,path[,size[,granularity[,advice]]]`. Unnamed
//! stores are `s0`, `s1` … in order; `Transient` always exists (malloc,
//! unbounded) and may be given explicitly, as any kind. `persistent`,
//! `deprecated_persistent`, `umem` and `debug` are refused.
//!
//! As varnishd's manager does, the file store's path is checked when the
//! argument is read: a missing file is made, and a size left out is the
//! existing file's (an error if it is empty).

/// One storage, as `-s` gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageSpec {
    /// `storage.NAME` in VCL.
    pub name: String,
    /// The most bytes it may hold; `None` is unbounded, as varnishd's
    /// malloc without a size.
    pub size: Option<u64>,
    /// What it is made of.
    pub kind: Kind,
}

/// A store's method and its own options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `malloc` (or `default`): the heap.
    Malloc,
    /// `file`: a file mapped into memory (always sized).
    File {
        path: std::path::PathBuf,
        /// The unit room is handed out in; the page size when not given.
        granularity: u64,
        advice: lacquer_cache::storage::Advice,
    },
}

impl StorageSpec {
    /// The method as `-s` and `storage.list` name it.
    pub fn method(&self) -> &'static str {
        match self.kind {
            Kind::Malloc => "malloc",
            Kind::File { .. } => "file",
        }
    }
}

/// Makes the store `spec` describes.
pub fn open(spec: &StorageSpec) -> std::io::Result<std::sync::Arc<dyn lacquer_cache::Storage>> {
    use lacquer_cache::storage;
    Ok(match &spec.kind {
        Kind::Malloc => std::sync::Arc::new(storage::Malloc::new(&spec.name, spec.size)),
        Kind::File { path, granularity, advice } => {
            let size = spec.size.expect("a file store is always sized");
            std::sync::Arc::new(storage::File::open(&spec.name, path, size, *granularity, *advice)?)
        }
    })
}

/// The smallest store size varnishd takes.
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
        let (size, kind) = match kind {
            "malloc" | "default" => {
                if opts.len() > 1 {
                    return Err(format!("(-s{kind}) too many arguments"));
                }
                let size = match opts.first().copied().filter(|s| !s.is_empty()) {
                    None => None,
                    Some(s) => Some(bytes(kind, "size", s)?),
                };
                (size, Kind::Malloc)
            }
            "file" => {
                let (size, kind) = file(&opts)?;
                (Some(size), kind)
            }
            "deprecated_persistent" | "persistent" | "umem" | "debug" => {
                return Err(format!("storage method \"{kind}\" is not supported by Lacquer; use malloc"));
            }
            _ => return Err(format!("Unknown storage method \"{kind}\"")),
        };
        out.push(StorageSpec { name, size, kind });
    }
    if let Some(i) = out.iter().position(|s| s.name == "Transient") {
        let t = out.remove(i);
        out.push(t);
    } else {
        out.push(StorageSpec { name: "Transient".into(), size: None, kind: Kind::Malloc });
    }
    if out.len() == 1 {
        // No store but Transient: one default store, as varnishd makes.
        out.insert(0, StorageSpec { name: "s0".into(), size: None, kind: Kind::Malloc });
    }
    Ok(out)
}

/// The page size: the file store's default granularity.
fn page_size() -> u64 {
    4096
}

/// `file,path[,size[,granularity[,advice]]]` (varnishd's `smf_init`):
/// the size, or the existing file's when left out, and the rest.
fn file(opts: &[&str]) -> Result<(u64, Kind), String> {
    use lacquer_cache::storage::Advice;
    if opts.len() > 4 {
        return Err("(-sfile) too many arguments".into());
    }
    let arg = |i: usize| opts.get(i).copied().filter(|s| !s.is_empty());
    let Some(path) = arg(0) else { return Err("(-sfile) path is mandatory".into()) };
    let size = arg(1).map(|s| bytes("file", "size", s)).transpose()?;
    let granularity = match arg(2) {
        None => page_size(),
        Some(g) => bytes_any("file", "granularity", g)?.max(1),
    };
    let advice = match arg(3) {
        None | Some("random") => Advice::Random,
        Some("normal") => Advice::Normal,
        Some("sequential") => Advice::Sequential,
        Some(a) => return Err(format!("(-s file) invalid advice: \"{a}\"")),
    };
    let path = std::path::PathBuf::from(path);
    let size = if path.is_dir() {
        size
    } else {
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
        let f = f.map_err(|_| format!("(-sfile) \"{}\" does not exist and could not be created", path.display()))?;
        let have = f.metadata().map(|m| m.len()).unwrap_or(0);
        size.or((have > 0).then_some(have))
    };
    let Some(size) = size else { return Err("(-sfile) no size specified".into()) };
    if size < granularity {
        return Err(format!("(-sfile) size {size} is smaller than the granularity {granularity}"));
    }
    Ok((size, Kind::File { path, granularity, advice }))
}

/// A size: a number with a unit (`k`, `m`, `g`, `t`, `p`, an optional
/// `b`, powers of 1024), at least 1 MiB.
fn bytes(kind: &str, what: &str, text: &str) -> Result<u64, String> {
    let n = bytes_any(kind, what, text)?;
    if n < MIN_MALLOC {
        return Err(format!("(-s{kind}) {what} \"{text}\": too small, did you forget to specify M or G?"));
    }
    Ok(n)
}

/// A number of bytes with an optional unit, of any size.
fn bytes_any(kind: &str, what: &str, text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("(-s{kind}) {what} \"{text}\": {why}");
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
    Ok((n * mult) as u64)
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
        assert!(parse(&["debug"]).unwrap_err().contains("not supported"));
    }

    #[test]
    fn file_arguments_as_varnishd_reads_them() {
        let dir = std::env::temp_dir().join(format!("lacquer-stevedore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("store");
        let fa = f.display().to_string();
        for (args, msg) in [
            (vec!["file".to_string()], "(-sfile) path is mandatory".to_string()),
            (vec!["file,".into()], "(-sfile) path is mandatory".into()),
            (vec![format!("file,{fa}")], "(-sfile) no size specified".into()),
            (
                vec![format!("file,{fa},10k")],
                "(-sfile) size \"10k\": too small, did you forget to specify M or G?".into(),
            ),
            (
                vec![format!("file,{fa},1x")],
                "(-sfile) size \"1x\": Unknown BYTES unit of measurement ([KMGTP][B])".into(),
            ),
            (vec![format!("file,{fa},-1M")], "(-sfile) size \"-1M\": Invalid number".into()),
            (
                vec![format!("file,{fa},10M,1x")],
                "(-sfile) granularity \"1x\": Unknown BYTES unit of measurement ([KMGTP][B])".into(),
            ),
            (vec![format!("file,{fa},10M,4096,bogus")], "(-s file) invalid advice: \"bogus\"".into()),
            (vec![format!("file,{fa},10M,4096,random,x")], "(-sfile) too many arguments".into()),
            (
                vec!["file,/nonexistent-dir/x/f,10M".into()],
                "(-sfile) \"/nonexistent-dir/x/f\" does not exist and could not be created".into(),
            ),
        ] {
            assert_eq!(parse_all(&args).unwrap_err(), msg, "{args:?}");
        }
        // The missing file was made; a size given is the store's.
        assert!(f.exists());
        let p = parse_all(&[format!("Transient=file,{fa},2M,,sequential"), "malloc".into()]).unwrap();
        assert_eq!(p.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s0", "Transient"]);
        assert_eq!(p[1].size, Some(2 << 20));
        assert_eq!(p[1].method(), "file");
        // Left out, the size is the existing file's.
        std::fs::write(&f, vec![0; 3 << 20]).unwrap();
        assert_eq!(parse_all(&[format!("file,{fa}")]).unwrap()[0].size, Some(3 << 20));
        // A directory gets a file of its own when the store is opened.
        let p = parse_all(&[format!("file,{},1M", dir.display())]).unwrap();
        let store = open(&p[0]).unwrap();
        assert_eq!((store.name(), store.kind(), store.limit()), ("s0", "file", Some(1 << 20)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
