//! Sources: the text of each VCL file the compiler reads, and positions in it.

/// One VCL source: a file, an inline text or the built-in VCL.
#[derive(Debug)]
pub struct Source {
    /// The name VCC prints in coordinates: the path as given, `<vcl.inline>`, `<builtin>`.
    pub name: String,
    /// The text, as bytes (VCL is not required to be UTF-8).
    pub text: Vec<u8>,
}

/// Index of a source in [`Sources`].
pub type SrcId = u32;

/// A byte range of one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub src: SrcId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// A span covering `self` and `other` (which must be in the same source
    /// and after it).
    pub fn to(self, other: Span) -> Span {
        Span { src: self.src, start: self.start, end: other.end.max(self.end) }
    }
}

/// Every source of one compilation, in the order they were read.
#[derive(Debug, Default)]
pub struct Sources {
    pub list: Vec<Source>,
}

impl Sources {
    /// Adds a source and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Vec<u8>>) -> SrcId {
        self.list.push(Source { name: name.into(), text: text.into() });
        (self.list.len() - 1) as SrcId
    }

    /// The source with this id.
    pub fn get(&self, id: SrcId) -> &Source {
        &self.list[id as usize]
    }

    /// The bytes a span covers.
    pub fn bytes(&self, sp: Span) -> &[u8] {
        &self.get(sp.src).text[sp.start as usize..sp.end as usize]
    }

    /// The text a span covers, lossily decoded.
    pub fn text(&self, sp: Span) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes(sp))
    }
}
