//! Binary log files (`-w` and `-r`), in varnishlog 7.1's own format: the
//! four bytes `VSL\0`, then records in the layout of [`crate::record`], one
//! after the other. A file written by `varnishlog -w` reads here, and
//! `varnishlog -r` reads ours.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::record::Record;

/// The first bytes of a log file (`VSL_FILE_ID`).
pub const FILE_MAGIC: &[u8; 4] = b"VSL\0";

/// Reads every record of a log file (`-` is standard input).
pub fn read_file(path: &Path) -> io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin().read_to_end(&mut bytes)?;
    } else {
        File::open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("Cannot open {}: {}", path.display(), crate::os_message(&e)))
            })?
            .read_to_end(&mut bytes)?;
    }
    if bytes.len() < 4 || &bytes[..4] != FILE_MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("Not a VSL file: {}", path.display())));
    }
    Ok(Record::decode_all(&bytes[4..]))
}

/// Writes records to a log file.
pub struct FileWriter {
    out: Box<dyn Write>,
}

impl FileWriter {
    /// Creates (or truncates) the file and writes its magic; `-` is
    /// standard output.
    pub fn create(path: &Path) -> io::Result<FileWriter> {
        let mut out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(io::BufWriter::new(File::create(path)?))
        };
        out.write_all(FILE_MAGIC)?;
        Ok(FileWriter { out })
    }

    /// Opens the file to append records to it (writing the magic if it
    /// is new or empty), or creates it afresh; `-` is standard output.
    pub fn open(path: &Path, append: bool) -> io::Result<FileWriter> {
        if !append || path.as_os_str() == "-" {
            return Self::create(path);
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let empty = f.metadata()?.len() == 0;
        let mut out: Box<dyn Write> = Box::new(io::BufWriter::new(f));
        if empty {
            out.write_all(FILE_MAGIC)?;
        }
        Ok(FileWriter { out })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &Record) -> io::Result<()> {
        let mut buf = Vec::with_capacity(crate::record::record_size(r.data.len()));
        r.encode(&mut buf);
        self.out.write_all(&buf)
    }

    /// Pushes what was written to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Side;
    use lacquer_defs::Tag;

    #[test]
    fn round_trip() {
        let p = std::env::temp_dir().join(format!("lacquer-shm-file-{}.vsl", std::process::id()));
        let recs = vec![
            Record::text(Tag::Begin, 1001, Side::Client, "req 1000 rxreq"),
            Record::text(Tag::ReqURL, 1001, Side::Client, "/a"),
            Record::text(Tag::End, 1001, Side::Client, ""),
        ];
        let mut w = FileWriter::create(&p).unwrap();
        for r in &recs {
            w.write(r).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..12], b"VSL\0\x0f\x00\x00\x4c\xe9\x03\x00\x40");
        assert_eq!(read_file(&p).unwrap(), recs);
        std::fs::write(&p, b"nope").unwrap();
        assert!(read_file(&p).unwrap_err().to_string().starts_with("Not a VSL file"));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn reads_a_file_varnishlog_wrote() {
        // `varnishlog -w` of varnishd 7.1.1: Begin and ReqMethod of vxid 2.
        let mut bytes = b"VSL\0".to_vec();
        bytes.extend_from_slice(b"\x0c\x00\x00\x4c\x02\x00\x00\x40req 1 rxreq\x00");
        bytes.extend_from_slice(b"\x04\x00\x00\x0f\x02\x00\x00\x40GET\x00");
        let p = std::env::temp_dir().join(format!("lacquer-shm-vfile-{}.vsl", std::process::id()));
        std::fs::write(&p, &bytes).unwrap();
        let recs = read_file(&p).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].tag(), Some(Tag::ReqMethod));
        assert_eq!(recs[1].payload_str(), "GET");
        let _ = std::fs::remove_file(&p);
    }
}
