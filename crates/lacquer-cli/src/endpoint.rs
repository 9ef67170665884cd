//! Where a running server's admin CLI is, for clients that know only its
//! working directory (`varnishadm -n DIR`).
//!
//! varnishd publishes its `-T` address and `-S` file in shared memory;
//! Lacquer writes them to `<workdir>/_.cli` as two lines, `-T ADDR` and
//! `-S PATH`, when the CLI starts listening, and removes the file when the
//! server stops. A client reads the file, connects and authenticates.

use std::io;
use std::path::{Path, PathBuf};

/// A server's CLI address and the secret file that opens it.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// `host:port`, as bound.
    pub address: String,
    /// The secret file.
    pub secret: PathBuf,
}

impl Endpoint {
    /// The file's name in the working directory.
    pub const FILE: &'static str = "_.cli";

    /// Writes the endpoint file of `workdir`, replacing any earlier one
    /// atomically so that a reader never sees half of it.
    pub fn publish(&self, workdir: &Path) -> io::Result<()> {
        let tmp = workdir.join(format!("{}.{}", Self::FILE, std::process::id()));
        std::fs::write(&tmp, format!("-T {}\n-S {}\n", self.address, self.secret.display()))?;
        std::fs::rename(&tmp, workdir.join(Self::FILE))
    }

    /// Reads the endpoint file of `workdir`.
    pub fn find(workdir: &Path) -> io::Result<Endpoint> {
        let text = std::fs::read_to_string(workdir.join(Self::FILE))?;
        Self::parse(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed CLI endpoint file"))
    }

    fn parse(text: &str) -> Option<Endpoint> {
        let (mut address, mut secret) = (None, None);
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("-T", a)) => address = Some(a.to_string()),
                Some(("-S", s)) => secret = Some(PathBuf::from(s)),
                _ => return None,
            }
        }
        Some(Endpoint { address: address?, secret: secret? })
    }

    /// Removes the endpoint file of `workdir` (when the server stops).
    pub fn withdraw(workdir: &Path) {
        let _ = std::fs::remove_file(workdir.join(Self::FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("lacquer-cli-endpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Endpoint::find(&dir).unwrap_err().kind(), io::ErrorKind::NotFound);
        let e = Endpoint { address: "127.0.0.1:4242".into(), secret: dir.join("_.secret") };
        e.publish(&dir).unwrap();
        assert_eq!(Endpoint::find(&dir).unwrap(), e);
        std::fs::write(dir.join(Endpoint::FILE), "garbage\n").unwrap();
        assert_eq!(Endpoint::find(&dir).unwrap_err().kind(), io::ErrorKind::InvalidData);
        Endpoint::withdraw(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
