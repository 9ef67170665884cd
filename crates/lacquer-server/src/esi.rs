//! Edge Side Includes, parsing side (Varnish's `cache_esi_parse.c`, the
//! "VEP"): reads a response body marked `beresp.do_esi` and turns it into
//! the instructions ESI delivery follows (`ved.rs`): copy this range of
//! the body, include that URL. What `<esi:remove>`, `<!--esi` … `-->`,
//! `<esi:comment/>` and the ESI tags themselves cover is skipped.
//!
//! The parser is Varnish's state machine, one state per step of reading a
//! tag, so that it accepts, skips and complains about exactly what
//! varnishd does, with its wording. Varnish reports an error "after" the
//! offset where the current run of copied or skipped bytes began; the
//! run bookkeeping below ([`Marks`]) reproduces that number.
//!
//! The instructions are kept with the object in a compact byte form
//! ([`encode`], [`decode`]), Varnish's `OA_ESIDATA`.

/// The `feature` bits that change how ESI is parsed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Features {
    /// `esi_disable_xml_check`: parse bodies that do not start with `<`.
    pub disable_xml_check: bool,
    /// `esi_ignore_other_elements`: do not skip over non-ESI tags.
    pub ignore_other_elements: bool,
    /// `esi_remove_bom`: drop a UTF-8 byte-order mark at the start.
    pub remove_bom: bool,
    /// `esi_ignore_https`: include `https://` sources as `http://`.
    pub ignore_https: bool,
    /// `esi_include_onerror`: obey `onerror="continue"`.
    pub include_onerror: bool,
}

impl Features {
    /// The ESI bits of the `feature` parameter.
    pub fn of(p: &crate::Params) -> Features {
        Features {
            disable_xml_check: p.feature("esi_disable_xml_check"),
            ignore_other_elements: p.feature("esi_ignore_other_elements"),
            remove_bom: p.feature("esi_remove_bom"),
            ignore_https: p.feature("esi_ignore_https"),
            include_onerror: p.feature("esi_include_onerror"),
        }
    }
}

/// One step of ESI delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Instr {
    /// Send `len` bytes of the body from `at`.
    Verbatim { at: usize, len: usize },
    /// Deliver `url` (with `Host: host` when the source named one) in
    /// place; `abort` when a failed include ends the whole response
    /// (no `onerror="continue"`).
    Include { url: Vec<u8>, host: Option<Vec<u8>>, abort: bool },
}

/// What the parser has to say, as `ESI_xmlerror` records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// An error (`esi_errors`).
    Error(String),
    /// A warning (`esi_warnings`).
    Warning(String),
    /// Why the body was not parsed at all (not counted).
    Notice(String),
}

impl Note {
    /// The record's text.
    pub fn text(&self) -> &str {
        match self {
            Note::Error(t) | Note::Warning(t) | Note::Notice(t) => t,
        }
    }
}

/// The outcome of parsing a body: its instructions when it had anything
/// ESI in it (otherwise it is delivered as it is), and the notes.
pub(crate) struct Parsed {
    pub instrs: Option<Vec<Instr>>,
    pub notes: Vec<Note>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Start,
    Bom,
    TestXml,
    NotXml,
    NotMyTag,
    NextTag,
    StartTag,
    Comment,
    CommentEsi,
    Cdata,
    EsiEndTag,
    EsiTag,
    EsiInclude,
    EsiRemove,
    EsiComment,
    EsiBogon,
    InTag,
    TagError,
    Attr,
    SkipAttr,
    AttrGetVal,
    AttrDelim,
    AttrVal,
    Match,
    Until,
}

/// A table of words to match at the parse point, and where to go when
/// none matches.
type Table = (&'static [(&'static [u8], St)], St);

const STARTTAG: Table = (
    &[
        (b"!--esi", St::CommentEsi),
        (b"!--", St::Comment),
        (b"/esi:", St::EsiEndTag),
        (b"esi:", St::EsiTag),
        (b"![CDATA[", St::Cdata),
    ],
    St::NotMyTag,
);
const ESI: Table =
    (&[(b"include", St::EsiInclude), (b"remove", St::EsiRemove), (b"comment", St::EsiComment)], St::EsiBogon);
const ATTR_INCLUDE: Table = (&[(b"src=", St::AttrGetVal), (b"onerror=", St::AttrGetVal)], St::SkipAttr);
const BOM: Table = (&[(b"\xef\xbb\xbf", St::Start)], St::Bom);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Skip,
    Verbatim,
}

/// Which tag's handler runs on its attributes and at its `>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Include,
    Remove,
    Comment,
}

/// Runs of copied and skipped bytes (Varnish's `vep_mark_*`): a run is
/// written out only when the other kind begins, and `o_last`, where the
/// current run began, is what errors are reported "after".
struct Marks {
    last: Mark,
    ver: usize,
    o_last: usize,
    o_wait: usize,
}

/// A whitespace byte, as XML and Varnish's `vct_islws` see it.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A blank inside a line (`vct_issp`).
fn is_sp(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// A byte that may start an XML name.
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// A byte that may continue an XML name.
fn is_name(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

struct Vep<'a> {
    body: &'a [u8],
    url: &'a [u8],
    f: Features,
    st: St,
    marks: Marks,
    out: Vec<Instr>,
    notes: Vec<Note>,
    esi_found: bool,
    endtag: bool,
    emptytag: bool,
    canattr: bool,
    remove: bool,
    in_esi_tag: bool,
    /// The `-->` that ends an `<!--esi` comment, and how much of it has
    /// been seen, while one is open.
    esicmt: Option<usize>,
    until: &'static [u8],
    until_at: usize,
    until_then: St,
    table: Table,
    hit: &'static [u8],
    attrs: Option<Table>,
    attr_val: Option<Vec<u8>>,
    attr_delim: u8,
    tag: Option<Tag>,
    src: Option<Vec<u8>>,
    cont: bool,
}

/// Parses `body`, fetched for `url` (relative sources are resolved against
/// it).
pub(crate) fn parse(body: &[u8], url: &[u8], f: Features) -> Parsed {
    let mut v = Vep {
        body,
        url,
        f,
        st: St::Start,
        marks: Marks { last: Mark::Verbatim, ver: 0, o_last: 0, o_wait: 0 },
        out: Vec::new(),
        notes: Vec::new(),
        esi_found: false,
        endtag: false,
        emptytag: false,
        canattr: false,
        remove: false,
        in_esi_tag: false,
        esicmt: None,
        until: b"",
        until_at: 0,
        until_then: St::NextTag,
        table: STARTTAG,
        hit: b"",
        attrs: None,
        attr_val: None,
        attr_delim: 0,
        tag: None,
        src: None,
        cont: false,
    };
    v.run();
    v.finish()
}

impl Vep<'_> {
    fn error(&mut self, what: &str) {
        self.notes.push(Note::Error(format!("ERR after {} {what}", self.marks.o_last)));
    }

    fn warn(&mut self, what: &str) {
        self.notes.push(Note::Warning(format!("WARN after {} {what}", self.marks.o_last)));
    }

    /// Marks the bytes from the last mark up to `p` as copied or skipped.
    fn mark(&mut self, mark: Mark, p: usize) {
        let m = &mut self.marks;
        if m.last == mark && p == m.ver {
            return;
        }
        if m.last != mark && m.o_wait > 0 {
            let (at, len) = (m.o_last, m.ver - m.o_last);
            let last = m.last;
            self.emit(last, at, len);
            let m = &mut self.marks;
            m.o_last = m.ver;
            m.o_wait = 0;
        }
        let m = &mut self.marks;
        m.o_wait += p - m.ver;
        m.ver = p;
        m.last = mark;
    }

    fn emit(&mut self, mark: Mark, at: usize, len: usize) {
        if mark == Mark::Verbatim && len > 0 {
            self.out.push(Instr::Verbatim { at, len });
        }
    }

    fn verbatim(&mut self, p: usize) {
        self.mark(Mark::Verbatim, p);
    }

    fn skip(&mut self, p: usize) {
        self.mark(Mark::Skip, p);
    }

    /// The entry of the current table that the body matches at `p`:
    /// `None` when the body ends inside a possible match.
    fn matches(&self, p: usize) -> Option<(&'static [u8], St)> {
        let rest = &self.body[p..];
        for &(word, st) in self.table.0 {
            if rest.starts_with(word) {
                return Some((word, st));
            }
            if word.starts_with(rest) {
                return None;
            }
        }
        Some((b"", self.table.1))
    }

    fn run(&mut self) {
        let b = self.body;
        let e = b.len();
        let mut p = 0;
        while p < e {
            match self.st {
                St::Start => {
                    if self.f.remove_bom && b[p] == 0xef {
                        self.table = BOM;
                        self.st = St::Match;
                    } else {
                        self.st = St::Bom;
                    }
                }
                St::Bom => {
                    self.skip(p);
                    self.st = if self.f.disable_xml_check { St::NextTag } else { St::TestXml };
                }
                St::TestXml => {
                    while p < e && is_lws(b[p]) {
                        p += 1;
                    }
                    self.verbatim(p);
                    if p < e && b[p] == b'<' {
                        p += 1;
                        self.st = St::StartTag;
                    } else if p < e && b[p] == 0xef {
                        self.notes.push(Note::Notice(
                            "No ESI processing, first char not '<' but BOM. (See feature esi_remove_bom)".into(),
                        ));
                        self.st = St::NotXml;
                    } else if p < e {
                        self.notes.push(Note::Notice(
                            "No ESI processing, first char not '<'. (See feature esi_disable_xml_check)".into(),
                        ));
                        self.st = St::NotXml;
                    }
                }
                St::NotXml => {
                    p = e;
                    self.verbatim(p);
                }
                St::NotMyTag => {
                    if self.f.ignore_other_elements {
                        p += 1;
                        self.st = St::NextTag;
                    } else {
                        while p < e {
                            p += 1;
                            if b[p - 1] == b'>' {
                                self.st = St::NextTag;
                                break;
                            }
                        }
                    }
                    if p == e && !self.remove {
                        self.verbatim(p);
                    }
                }
                St::NextTag => p = self.next_tag(p),
                St::StartTag => {
                    self.endtag = false;
                    self.table = STARTTAG;
                    self.st = St::Match;
                }
                St::Comment => {
                    self.esicmt = None;
                    self.until(b"-->");
                }
                St::CommentEsi => {
                    if self.remove {
                        self.error("ESI 1.0 Nested <!--esi element in <esi:remove>");
                    }
                    self.esicmt = Some(0);
                    self.st = St::NextTag;
                    self.skip(p);
                }
                St::Cdata => self.until(b"]]>"),
                St::EsiEndTag => {
                    self.endtag = true;
                    self.st = St::EsiTag;
                }
                St::EsiTag => {
                    self.in_esi_tag = true;
                    self.esi_found = true;
                    self.skip(p);
                    self.table = ESI;
                    self.st = St::Match;
                }
                St::EsiInclude => {
                    if self.remove {
                        self.error("ESI 1.0 <esi:include> element nested in <esi:remove>");
                        self.st = St::TagError;
                    } else if self.endtag {
                        self.error("ESI 1.0 </esi:include> illegal end-tag");
                        self.st = St::TagError;
                    } else {
                        self.tag = Some(Tag::Include);
                        self.attrs = Some(ATTR_INCLUDE);
                        self.st = St::InTag;
                    }
                }
                St::EsiRemove => {
                    self.tag = Some(Tag::Remove);
                    self.st = St::InTag;
                }
                St::EsiComment => {
                    if self.remove {
                        self.error("ESI 1.0 <esi:comment> element nested in <esi:remove>");
                        self.st = St::TagError;
                    } else if self.endtag {
                        self.error("ESI 1.0 </esi:comment> illegal end-tag");
                        self.st = St::TagError;
                    } else {
                        self.tag = Some(Tag::Comment);
                        self.st = St::InTag;
                    }
                }
                St::EsiBogon => {
                    self.error("ESI 1.0 <esi:bogus> element");
                    self.st = St::TagError;
                }
                St::InTag => p = self.in_tag(p),
                St::TagError => {
                    while p < e && b[p] != b'>' {
                        p += 1;
                    }
                    if p < e {
                        p += 1;
                        self.skip(p);
                        self.in_esi_tag = false;
                        self.st = St::NextTag;
                        self.attr_val = None;
                    }
                }
                St::Attr => match self.attrs {
                    None => {
                        p += 1;
                        self.st = St::SkipAttr;
                    }
                    Some(t) => {
                        self.table = t;
                        self.st = St::Match;
                    }
                },
                St::SkipAttr => {
                    while p < e && is_name(b[p]) {
                        p += 1;
                    }
                    if p < e && b[p] == b'=' {
                        p += 1;
                        self.st = St::AttrDelim;
                    } else if p < e && (b[p] == b'>' || b[p] == b'/' || is_sp(b[p])) {
                        self.st = St::InTag;
                    } else if p < e {
                        self.error("XML 1.0 Illegal attr char");
                        self.st = St::TagError;
                    }
                }
                St::AttrGetVal => {
                    self.attr_val = Some(Vec::new());
                    self.st = St::AttrDelim;
                }
                St::AttrDelim => {
                    if b[p] == b'"' || b[p] == b'\'' {
                        self.attr_delim = b[p];
                        p += 1;
                        self.st = St::AttrVal;
                    } else if !is_sp(b[p]) {
                        self.attr_delim = b' ';
                        self.st = St::AttrVal;
                    } else {
                        self.error("XML 1.0 Illegal attribute delimiter");
                        self.st = St::TagError;
                    }
                }
                St::AttrVal => p = self.attr_value(p),
                St::Match => match self.matches(p) {
                    Some((word, st)) => {
                        p += word.len();
                        self.hit = word;
                        self.st = st;
                    }
                    None => p = e,
                },
                St::Until => {
                    while p < e {
                        let c = b[p];
                        p += 1;
                        if c != self.until[self.until_at] {
                            self.until_at = 0;
                        } else {
                            self.until_at += 1;
                            if self.until_at == self.until.len() {
                                self.st = self.until_then;
                                break;
                            }
                        }
                    }
                    if p == e && !self.remove {
                        self.verbatim(p);
                    }
                }
            }
        }
        if p != self.marks.ver {
            if self.in_esi_tag || self.remove {
                self.skip(p);
            } else {
                let last = self.marks.last;
                self.mark(last, p);
            }
        }
    }

    fn until(&mut self, word: &'static [u8]) {
        self.until = word;
        self.until_at = 0;
        self.until_then = St::NextTag;
        self.st = St::Until;
    }

    /// Hunts for the next tag, and for the end of an `<!--esi` comment
    /// while one is open.
    fn next_tag(&mut self, mut p: usize) -> usize {
        const END: &[u8] = b"-->";
        let b = self.body;
        let e = b.len();
        self.emptytag = false;
        self.attrs = None;
        self.tag = None;
        while p < e && b[p] != b'<' {
            let Some(seen) = self.esicmt else {
                p += 1;
                continue;
            };
            if b[p] != END[seen] {
                p += 1;
                self.esicmt = Some(0);
                continue;
            }
            if !self.remove && seen == 0 {
                self.verbatim(p);
            }
            p += 1;
            if seen + 1 == END.len() {
                self.esi_found = true;
                self.esicmt = None;
                // The end of the comment goes, what came before it stays.
                self.skip(p);
            } else {
                self.esicmt = Some(seen + 1);
            }
        }
        if p < e {
            if !self.remove {
                self.verbatim(p);
            }
            p += 1;
            self.st = St::StartTag;
        } else if self.esicmt.is_none_or(|s| s == 0) && !self.remove {
            self.verbatim(p);
        }
        p
    }

    /// Inside an ESI tag, between attributes.
    fn in_tag(&mut self, mut p: usize) -> usize {
        let b = self.body;
        let e = b.len();
        while p < e && is_lws(b[p]) && !self.emptytag {
            p += 1;
            self.canattr = true;
        }
        if p < e && b[p] == b'/' && !self.emptytag {
            p += 1;
            self.emptytag = true;
            self.canattr = false;
        }
        if p < e && b[p] == b'>' {
            p += 1;
            self.skip(p);
            self.tag_end();
            self.in_esi_tag = false;
            self.st = St::NextTag;
        } else if p < e && self.emptytag {
            self.error("XML 1.0 '>' does not follow '/' in tag");
            self.st = St::TagError;
        } else if p < e && self.canattr && is_name_start(b[p]) {
            self.st = St::Attr;
        } else if p < e {
            self.error("XML 1.0 Illegal attribute start char");
            self.st = St::TagError;
        }
        p
    }

    /// An attribute's value, up to its delimiter.
    fn attr_value(&mut self, mut p: usize) -> usize {
        let b = self.body;
        let e = b.len();
        let delim = self.attr_delim;
        while p < e && b[p] != b'>' && b[p] != delim && (delim != b' ' || !is_sp(b[p])) {
            if let Some(v) = &mut self.attr_val {
                v.push(b[p]);
            }
            p += 1;
        }
        if p < e && b[p] == b'>' {
            self.error("XML 1.0 Missing end attribute delimiter");
            self.st = St::TagError;
            self.attr_delim = 0;
            self.attr_val = None;
        } else if p < e {
            self.attr_delim = 0;
            p += 1;
            self.st = St::InTag;
            if let Some(v) = self.attr_val.take() {
                self.attribute(v);
            }
        }
        p
    }

    /// An attribute of `<esi:include>` (the only tag whose attributes
    /// count).
    fn attribute(&mut self, value: Vec<u8>) {
        if self.hit == b"src=" {
            if self.src.is_some() {
                self.error("ESI 1.0 <esi:include> has multiple src= attributes");
                self.st = St::TagError;
                self.src = None;
                return;
            }
            if value.iter().any(|&c| is_lws(c)) {
                self.error("ESI 1.0 <esi:include> has whitespace in src= attribute");
                self.st = St::TagError;
                return;
            }
            self.src = Some(value);
        } else if self.hit == b"onerror=" && self.f.include_onerror {
            self.cont = value == b"continue";
        }
    }

    /// The `>` of an ESI tag.
    fn tag_end(&mut self) {
        match self.tag {
            Some(Tag::Include) => self.include(),
            Some(Tag::Remove) => {
                if self.emptytag {
                    self.error("ESI 1.0 <esi:remove/> not legal");
                } else if self.remove && !self.endtag {
                    self.error("ESI 1.0 <esi:remove> already open");
                } else if !self.remove && self.endtag {
                    self.error("ESI 1.0 <esi:remove> not open");
                } else {
                    self.remove = !self.endtag;
                }
            }
            Some(Tag::Comment) if !self.emptytag => self.error("ESI 1.0 <esi:comment> needs final '/'"),
            Some(Tag::Comment) | None => {}
        }
    }

    /// `<esi:include src=… />` is complete: its source becomes an include.
    fn include(&mut self) {
        if !self.emptytag {
            self.warn("ESI 1.0 <esi:include> lacks final '/'");
        }
        let cont = std::mem::take(&mut self.cont);
        let Some(src) = self.src.take() else {
            self.error("ESI 1.0 <esi:include> lacks src attr");
            return;
        };
        let with_host = |v: &mut Self, rest: &[u8]| -> Option<(Vec<u8>, Vec<u8>)> {
            match rest.iter().position(|&c| c == b'/') {
                Some(i) => Some((rest[..i].to_vec(), rest[i..].to_vec())),
                None => {
                    v.error("ESI 1.0 <esi:include> invalid src= URL");
                    v.st = St::TagError;
                    None
                }
            }
        };
        let (host, path) = if src.len() > 7 && src.starts_with(b"http://") {
            let Some((h, path)) = with_host(self, &src[7..]) else { return };
            (Some(h), path)
        } else if src.len() > 8 && src.starts_with(b"https://") {
            if !self.f.ignore_https {
                self.warn("ESI 1.0 <esi:include> with https:// ignored");
                self.st = St::TagError;
                return;
            }
            self.warn("ESI 1.0 <esi:include> https:// treated as http://");
            let Some((h, path)) = with_host(self, &src[8..]) else { return };
            (Some(h), path)
        } else if src.first() == Some(&b'/') {
            (None, src)
        } else {
            // Relative to the directory of the URL fetched, its query left
            // out.
            let path_end = self.url.iter().position(|&c| c == b'?').unwrap_or(self.url.len());
            let dir = self.url[..path_end].iter().rposition(|&c| c == b'/').unwrap_or(path_end);
            let mut url = self.url[..dir].to_vec();
            url.push(b'/');
            url.extend_from_slice(&src);
            (None, url)
        };
        self.out.push(Instr::Include { url: unescape(&path), host, abort: !cont });
    }

    fn finish(mut self) -> Parsed {
        if !matches!(self.st, St::Start | St::Bom | St::TestXml | St::NotXml | St::NextTag) {
            self.error("VEP ended inside a tag");
        }
        let m = &self.marks;
        if m.o_wait > 0 {
            let (last, at, len) = (m.last, m.o_last, m.ver - m.o_last);
            self.emit(last, at, len);
        }
        let instrs = (self.esi_found && !self.out.is_empty()).then_some(self.out);
        Parsed { instrs, notes: self.notes }
    }
}

/// The five XML entities, written out.
fn unescape(s: &[u8]) -> Vec<u8> {
    const ENTITIES: [(&[u8], u8); 5] =
        [(b"&apos;", b'\''), (b"&quot;", b'"'), (b"&lt;", b'<'), (b"&gt;", b'>'), (b"&amp;", b'&')];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    'next: while i < s.len() {
        if s[i] == b'&' {
            for (name, c) in ENTITIES {
                if s[i..].starts_with(name) {
                    out.push(c);
                    i += name.len();
                    continue 'next;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Writes instructions in the form kept with the object: `V` and two
/// 8-byte numbers, or `I`, a flag byte, and the URL and host each as a
/// 4-byte length and its bytes (an absent host as length `u32::MAX`).
pub(crate) fn encode(instrs: &[Instr]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in instrs {
        match i {
            Instr::Verbatim { at, len } => {
                out.push(b'V');
                out.extend_from_slice(&(*at as u64).to_le_bytes());
                out.extend_from_slice(&(*len as u64).to_le_bytes());
            }
            Instr::Include { url, host, abort } => {
                out.push(b'I');
                out.push(*abort as u8);
                out.extend_from_slice(&(url.len() as u32).to_le_bytes());
                out.extend_from_slice(url);
                match host {
                    Some(h) => {
                        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
                        out.extend_from_slice(h);
                    }
                    None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                }
            }
        }
    }
    out
}

/// Reads what [`encode`] wrote; `None` if it is damaged.
pub(crate) fn decode(mut b: &[u8]) -> Option<Vec<Instr>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head)
    }
    fn u64_of(b: &mut &[u8]) -> Option<usize> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?) as usize)
    }
    fn u32_of(b: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    while let Some(op) = take(&mut b, 1) {
        match op[0] {
            b'V' => {
                let at = u64_of(&mut b)?;
                let len = u64_of(&mut b)?;
                out.push(Instr::Verbatim { at, len });
            }
            b'I' => {
                let abort = take(&mut b, 1)?[0] != 0;
                let n = u32_of(&mut b)? as usize;
                let url = take(&mut b, n)?.to_vec();
                let host = match u32_of(&mut b)? {
                    u32::MAX => None,
                    n => Some(take(&mut b, n as usize)?.to_vec()),
                };
                out.push(Instr::Include { url, host, abort });
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> (Vec<String>, Vec<String>) {
        let p = parse(body.as_bytes(), b"/dir/page?q=1", Features::default());
        let pieces = p
            .instrs
            .unwrap_or_default()
            .into_iter()
            .map(|i| match i {
                Instr::Verbatim { at, len } => body[at..at + len].to_string(),
                Instr::Include { url, host, .. } => format!(
                    "[{}{}]",
                    host.map(|h| String::from_utf8_lossy(&h).to_string() + ":").unwrap_or_default(),
                    String::from_utf8_lossy(&url)
                ),
            })
            .collect();
        (pieces, p.notes.iter().map(|n| n.text().to_string()).collect())
    }

    #[test]
    fn includes_removes_and_comments() {
        let (out, notes) = texts(
            "<a>x<esi:include src=\"b&amp;c\"/>y<esi:remove>gone</esi:remove>z<!--esi w-->v<esi:comment x=\"1\"/>u",
        );
        assert_eq!(out, ["<a>x", "[/dir/b&c]", "y", "z", " w", "v", "u"]);
        assert!(notes.is_empty(), "{notes:?}");
        let (out, _) = texts("<p><esi:include src=\"http://h.example/x\"/>");
        assert_eq!(out, ["<p>", "[h.example:/x]"]);
    }

    #[test]
    fn errors_are_reported_after_the_run_varnish_names() {
        let (_, notes) =
            texts("<html>0123456789<esi:remove>abc<esi:include src=\"x\"/>def</esi:remove>jkl<esi:bogus/>");
        assert_eq!(
            notes,
            [
                "ERR after 16 ESI 1.0 <esi:include> element nested in <esi:remove>",
                "ERR after 72 ESI 1.0 <esi:bogus> element"
            ]
        );
        let (_, notes) =
            texts("  <a>x<esi:include src=\"/b\">yy<esi:comment text=\"z\">zz</esi:comment>uu<esi:include src=/c/>");
        assert_eq!(
            notes,
            [
                "WARN after 6 ESI 1.0 <esi:include> lacks final '/'",
                "ERR after 30 ESI 1.0 <esi:comment> needs final '/'",
                "ERR after 54 ESI 1.0 </esi:comment> illegal end-tag",
                "ERR after 70 XML 1.0 Missing end attribute delimiter",
            ]
        );
    }

    #[test]
    fn features_change_what_is_accepted() {
        let run = |body: &[u8], f: Features| parse(body, b"/", f);
        let bom = b"\xef\xbb\xbf<a><esi:include src=\"/x\"/>";
        assert!(run(bom, Features::default()).instrs.is_none(), "a BOM is not '<'");
        let p = run(bom, Features { remove_bom: true, ..Features::default() });
        assert_eq!(p.instrs.unwrap()[0], Instr::Verbatim { at: 3, len: 3 });
        let https = b"<a><esi:include src=\"https://h/x\"/>";
        let p = run(https, Features::default());
        assert_eq!(p.notes, [Note::Warning("WARN after 3 ESI 1.0 <esi:include> with https:// ignored".into())]);
        let p = run(https, Features { ignore_https: true, ..Features::default() });
        let host = Some(b"h".to_vec());
        assert!(p.instrs.unwrap().contains(&Instr::Include { url: b"/x".to_vec(), host, abort: true }));
        let cont = b"<a><esi:include src=\"/x\" onerror=\"continue\"/>";
        let abort = |f: Features| match &run(cont, f).instrs.unwrap()[1] {
            Instr::Include { abort, .. } => *abort,
            other => panic!("{other:?}"),
        };
        assert!(abort(Features::default()), "onerror is obeyed only under esi_include_onerror");
        assert!(!abort(Features { include_onerror: true, ..Features::default() }));
    }

    #[test]
    fn comments_and_cdata_pass_through() {
        let (out, notes) =
            texts("<a><!-- <esi:include src=\"/x\"/> --><![CDATA[<esi:bogus>]]><esi:comment text=\"x\"/>b");
        assert_eq!(out, ["<a><!-- <esi:include src=\"/x\"/> --><![CDATA[<esi:bogus>]]>", "b"]);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn not_xml_is_not_parsed() {
        let p = parse(b"xx<esi:include src=\"/b\"/>", b"/", Features::default());
        assert!(p.instrs.is_none());
        assert_eq!(
            p.notes,
            [Note::Notice("No ESI processing, first char not '<'. (See feature esi_disable_xml_check)".into())]
        );
    }

    #[test]
    fn instructions_survive_encoding() {
        let i = vec![
            Instr::Verbatim { at: 3, len: 9 },
            Instr::Include { url: b"/x".to_vec(), host: Some(b"h".to_vec()), abort: true },
            Instr::Include { url: b"/y".to_vec(), host: None, abort: false },
        ];
        assert_eq!(decode(&encode(&i)), Some(i));
    }
}
