//! `fs`: a backend that serves the files under a directory, so that
//! Lacquer can cache a static site with no web server behind it.
//!
//! ```vcl
//! import fs;
//! sub vcl_init {
//!     new site = fs.root("/srv/www");
//! }
//! sub vcl_recv {
//!     set req.backend_hint = site.backend();
//! }
//! ```
//!
//! What it answers, for `GET` and `HEAD` (anything else is 405):
//!
//! - a file: 200 with its bytes, `Content-Type` by its extension,
//!   `Last-Modified`, and `ETag: "<mtime hex>-<size hex>"` (as nginx
//!   makes them); 304 to a request whose `If-None-Match` has the ETag or,
//!   without one, whose `If-Modified-Since` is the `Last-Modified` (an
//!   exact match, nginx's default); one byte range (`Range: bytes=…`)
//!   as 206, an unsatisfiable one as 416;
//! - a directory: its index file (`index.html` unless `index` says
//!   otherwise) when the URL ends in `/`, else 301 to the URL with `/`;
//! - 404 when there is no such file (or no index), 403 when the path is
//!   not to be served: a `..` segment (also percent-encoded), a NUL byte,
//!   or a symbolic link that leads out of the root. The root itself is
//!   resolved once, when the object is made.
//!
//! The query string is ignored. Range and conditionals matter for pass
//! and pipe, and for revalidation (`beresp.keep`): on a miss Lacquer asks
//! for the whole object and answers clients' ranges from the cache.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use lacquer_module::{BackendRequest, BackendResponse, NativeBackend, ResponseBody};

/// The files under one directory.
pub struct Root {
    root: PathBuf,
    index: String,
}

impl Root {
    /// Serves `path` (which must be a directory), with `index` as the file
    /// a directory's URL gets.
    pub fn new(path: &str, index: &str) -> Result<Root, String> {
        let root = std::fs::canonicalize(path).map_err(|e| format!("fs.root: {path}: {e}"))?;
        if !root.is_dir() {
            return Err(format!("fs.root: {path} is not a directory"));
        }
        if index.is_empty() || index.contains('/') {
            return Err(format!("fs.root: bad index file name '{index}'"));
        }
        Ok(Root { root, index: index.to_string() })
    }

    /// Where a URL path leads under the root, or the status refusing it.
    fn resolve(&self, url: &str) -> Result<(PathBuf, bool), u16> {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let decoded = percent_decode(path).ok_or(400u16)?;
        if decoded.contains(&0) {
            return Err(403);
        }
        let decoded = String::from_utf8(decoded).map_err(|_| 404u16)?;
        let mut out = self.root.clone();
        for c in Path::new(&decoded).components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => return Err(403),
            }
        }
        Ok((out, decoded.ends_with('/')))
    }

    /// The answer to one request.
    pub fn answer(&self, req: &BackendRequest) -> BackendResponse {
        let method = req.method.as_str();
        if method != "GET" && method != "HEAD" {
            return status(405).header("Allow", "GET, HEAD");
        }
        let (mut path, slash) = match self.resolve(&req.url) {
            Ok(p) => p,
            Err(code) => return status(code),
        };
        let Ok(meta) = std::fs::metadata(&path) else { return status(404) };
        if meta.is_dir() {
            if !slash {
                let (p, q) = req.url.split_once('?').map_or((req.url.as_str(), None), |(p, q)| (p, Some(q)));
                let to = match q {
                    Some(q) => format!("{p}/?{q}"),
                    None => format!("{p}/"),
                };
                return status(301).header("Location", to);
            }
            path.push(&self.index);
        }
        // Symbolic links may point anywhere: where the file really is must
        // be under the root.
        let Ok(real) = std::fs::canonicalize(&path) else { return status(404) };
        if !real.starts_with(&self.root) {
            return status(403);
        }
        let Ok(meta) = std::fs::metadata(&real) else { return status(404) };
        if !meta.is_file() {
            return status(404);
        }
        let Ok(file) = File::open(&real) else { return status(403) };
        let size = meta.len();
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let etag = format!("\"{mtime:x}-{size:x}\"");
        let last_modified = http_date(mtime);
        let fresh = match (req.header("If-None-Match"), req.header("If-Modified-Since")) {
            (Some(inm), _) => inm.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
            }),
            (None, Some(ims)) => ims.trim() == last_modified,
            _ => false,
        };
        let headers =
            |r: BackendResponse| r.header("Last-Modified", last_modified.clone()).header("ETag", etag.clone());
        if fresh {
            return headers(status(304));
        }
        let ctype = content_type(&real);
        match req.header("Range").and_then(|r| range(r, size)) {
            Some(Ok((from, to))) => {
                let body = ResponseBody::File { file, offset: from, len: to - from + 1 };
                headers(BackendResponse::new(206, body))
                    .header("Content-Type", ctype)
                    .header("Content-Range", format!("bytes {from}-{to}/{size}"))
                    .header("Accept-Ranges", "bytes")
            }
            Some(Err(())) => status(416).header("Content-Range", format!("bytes */{size}")),
            None => headers(BackendResponse::new(200, ResponseBody::File { file, offset: 0, len: size }))
                .header("Content-Type", ctype)
                .header("Accept-Ranges", "bytes"),
        }
    }
}

impl NativeBackend for Root {
    fn respond(&self, req: &BackendRequest) -> BackendResponse {
        self.answer(req)
    }
}

fn status(code: u16) -> BackendResponse {
    BackendResponse::new(code, ResponseBody::Empty)
}

/// One byte range of a `size`-byte file: `None` when the header is not
/// one range of bytes (then the whole file is sent), `Err` when it cannot
/// be satisfied.
fn range(h: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = match (a.is_empty(), b.is_empty()) {
        (true, true) => return None,
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 || size == 0 {
                return Some(Err(()));
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, _) => {
            let from: u64 = a.parse().ok()?;
            let to: u64 = if b.is_empty() { size.saturating_sub(1) } else { b.parse().ok()? };
            if from >= size || to < from {
                return Some(Err(()));
            }
            (from, to.min(size - 1))
        }
    };
    Some(Ok(r))
}

/// `%XX` decoded; `None` for a `%` not followed by two hex digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The MIME type of a file, by its extension.
fn content_type(p: &Path) -> &'static str {
    let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// Seconds since the epoch as an HTTP date (IMF-fixdate).
fn http_date(secs: u64) -> String {
    lacquer_module::http_date(secs as f64).unwrap_or_default()
}

#[lacquer_module::module(name = "fs")]
pub mod vmod {
    //! Serves the files under a directory as a backend.

    use std::sync::Arc;

    use lacquer_module::{Backend, Ctx, Failure};

    /// A directory served as a backend.
    pub struct Root {
        me: Backend,
    }

    impl Root {
        /// Serves the directory `path`; a directory's URL gets its
        /// `index` file.
        pub fn new(
            ctx: &mut Ctx,
            #[positional] path: &str,
            #[default("index.html")] index: &str,
        ) -> Result<Root, Failure> {
            let r = super::Root::new(path, index).map_err(Failure)?;
            let me = ctx.add_backend(Arc::new(r))?;
            Ok(Root { me })
        }

        /// The backend, for `req.backend_hint` and the like.
        pub fn backend(&self) -> Backend {
            self.me
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_764_030_950), "Tue, 25 Nov 2025 00:35:50 GMT");
    }

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        assert_eq!(range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(range("bytes=100-", 100), Some(Err(())));
        assert_eq!(range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
    }

    #[test]
    fn percent_decoding_refuses_bad_escapes() {
        assert_eq!(percent_decode("/a%20b").unwrap(), b"/a b");
        assert_eq!(percent_decode("/%2e%2E/x").unwrap(), b"/../x");
        assert!(percent_decode("/%g0").is_none());
        assert!(percent_decode("/%2").is_none());
    }
}
