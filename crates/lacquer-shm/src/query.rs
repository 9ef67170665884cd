//! The VSL query language of `-q` (vsl-query(7); libvarnishapi's
//! `vxp_lexer.c`, `vxp_parse.c` and `vsl_query.c`).
//!
//! ```text
//! query    := or                      several lines are or-ed; '#' starts a comment
//! or       := and { "or" and }
//! and      := not { "and" not }
//! not      := "not" not | "(" or ")" | test
//! test     := "vxid" numop integer
//!           | selector [ op operand ]  a bare selector means "some record is selected"
//! selector := [ "{" level ["+"|"-"] "}" ] tagglob {"," tagglob} [ ":" prefix ] [ "[" field "]" ]
//! op       := "==" | "!=" | "<" | "<=" | ">" | ">=" | "eq" | "ne" | "~" | "!~"
//! ```
//!
//! A query is true of a group of transactions if some record of the group
//! satisfies it; `and`, `or` and `not` combine those answers. Errors are
//! reported as varnishlog reports them: the message, `(Pos N)`, the query,
//! and a line marking the offending token.

use lacquer_defs::tags::{ALL, NAMES};
use lacquer_defs::Tag;
use pcre2::bytes::Regex;

use crate::group::Tx;
use crate::record::Record;

/// A query error, shown as varnishlog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// What is wrong (`Tag name matches zero tags`).
    pub message: String,
    /// The query line.
    pub line: String,
    /// Where the offending token starts, 0-based.
    pub pos: usize,
    /// How long it is (0 at the end of input).
    pub len: usize,
    /// A position inside the token to point at with `^` (regex errors).
    pub caret: Option<usize>,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Query expression error:")?;
        writeln!(f, "{} (Pos {})", self.message, self.caret.unwrap_or(self.pos) + 1)?;
        writeln!(f, "{}", self.line)?;
        let mut marks = String::new();
        for i in 0..self.line.chars().count().max(self.pos + self.len) {
            marks.push(if i >= self.pos && i < self.pos + self.len {
                if self.caret == Some(i) {
                    '^'
                } else {
                    '#'
                }
            } else {
                '-'
            });
        }
        writeln!(f, "{marks}")
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(char),
    Op(Op),
    Word(String),
    Str(String),
    Eoi,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    StrEq,
    StrNe,
    Match,
    NoMatch,
}

impl Op {
    fn numeric(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }

    fn cmp<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            _ => false,
        }
    }
}

struct Lexer<'a> {
    line: &'a str,
    toks: Vec<(Tok, usize, usize)>,
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '*')
}

impl<'a> Lexer<'a> {
    fn err(&self, message: impl Into<String>, pos: usize, len: usize) -> QueryError {
        QueryError { message: message.into(), line: self.line.to_string(), pos, len, caret: None }
    }

    fn run(line: &'a str) -> Result<Vec<(Tok, usize, usize)>, QueryError> {
        let mut lx = Lexer { line, toks: Vec::new() };
        let cs: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
            let op2 = match two.as_str() {
                "==" => Some(Op::Eq),
                "!=" => Some(Op::Ne),
                "<=" => Some(Op::Le),
                ">=" => Some(Op::Ge),
                "!~" => Some(Op::NoMatch),
                _ => None,
            };
            if let Some(op) = op2 {
                lx.toks.push((Tok::Op(op), i, 2));
                i += 2;
                continue;
            }
            match c {
                '<' => lx.toks.push((Tok::Op(Op::Lt), i, 1)),
                '>' => lx.toks.push((Tok::Op(Op::Gt), i, 1)),
                '~' => lx.toks.push((Tok::Op(Op::Match), i, 1)),
                '(' | ')' | '{' | '}' | '[' | ']' | ':' | ',' => lx.toks.push((Tok::Punct(c), i, 1)),
                '"' | '\'' => {
                    let start = i;
                    let mut s = String::new();
                    i += 1;
                    loop {
                        match cs.get(i) {
                            None => return Err(lx.err("Unterminated string", start, cs.len() - start)),
                            // A backslash keeps the next character as it is
                            // (`\\` is one backslash), and cannot keep a
                            // newline.
                            Some('\\') if cs.get(i + 1).is_some_and(|&n| n != '\n') => {
                                s.push(cs[i + 1]);
                                i += 2;
                            }
                            Some('\n') => return Err(lx.err("Unterminated string", start, i - start)),
                            Some(&d) if d == c => break,
                            Some(&d) => {
                                s.push(d);
                                i += 1;
                            }
                        }
                    }
                    lx.toks.push((Tok::Str(s), start, i + 1 - start));
                }
                c if word_char(c) => {
                    let start = i;
                    while i < cs.len() && word_char(cs[i]) {
                        i += 1;
                    }
                    let w: String = cs[start..i].iter().collect();
                    let tok = match w.as_str() {
                        "eq" => Tok::Op(Op::StrEq),
                        "ne" => Tok::Op(Op::StrNe),
                        _ => Tok::Word(w),
                    };
                    lx.toks.push((tok, start, i - start));
                    continue;
                }
                _ => return Err(lx.err("Syntax error", i, 1)),
            }
            i += 1;
        }
        lx.toks.push((Tok::Eoi, cs.len(), 0));
        Ok(lx.toks)
    }
}

/// Which transactions a selector looks at (`{2}`, `{2+}`, `{2-}`).
#[derive(Debug, Clone, Copy)]
enum Level {
    Any,
    Exactly(usize),
    AtLeast(usize),
    AtMost(usize),
}

impl Level {
    fn admits(self, l: usize) -> bool {
        match self {
            Level::Any => true,
            Level::Exactly(n) => l == n,
            Level::AtLeast(n) => l >= n,
            Level::AtMost(n) => l <= n,
        }
    }
}

/// What a test compares the selected part of a record with.
#[derive(Debug)]
enum Operand {
    Int(i64),
    Float(f64),
    Str(String),
    Re(Regex),
}

/// A record selector: `{level}taglist:prefix[field]`.
#[derive(Debug)]
struct Selector {
    level: Level,
    /// Bit `t` set: tag number `t` is selected.
    tags: [u64; 2],
    prefix: Option<String>,
    field: Option<usize>,
}

impl Selector {
    fn has(&self, tag: u8) -> bool {
        self.tags[tag as usize / 64] & (1 << (tag % 64)) != 0
    }

    /// The part of `r` this selector looks at, or `None` if it does not
    /// select `r`.
    fn part<'r>(&self, r: &'r Record) -> Option<&'r [u8]> {
        if !self.has(r.tag) {
            return None;
        }
        let mut b = r.payload();
        if let Some(p) = &self.prefix {
            if b.len() <= p.len() || !b[..p.len()].eq_ignore_ascii_case(p.as_bytes()) || b[p.len()] != b':' {
                return None;
            }
            b = &b[p.len() + 1..];
            while let Some((c, rest)) = b.split_first() {
                if !c.is_ascii_whitespace() {
                    break;
                }
                b = rest;
            }
        }
        if let Some(n) = self.field {
            b = b.split(|c| c.is_ascii_whitespace()).filter(|f| !f.is_empty()).nth(n - 1)?;
        }
        Some(b)
    }
}

#[derive(Debug)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Vxid(Op, i64),
    Exists(Selector),
    Test(Selector, Op, Operand),
}

/// Parses a number as C's `strtoll(s, &end, 0)` would, then a fraction as
/// `strtod`: what a record field means to a numeric test.
fn num_prefix(s: &str) -> Option<(f64, bool)> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some((i as f64, true));
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| (f, false))
}

impl Expr {
    fn eval(&self, group: &[Tx]) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(group) || b.eval(group),
            Expr::And(a, b) => a.eval(group) && b.eval(group),
            Expr::Not(a) => !a.eval(group),
            Expr::Vxid(op, n) => group.iter().any(|t| op.cmp(i64::from(t.vxid), *n)),
            Expr::Exists(sel) => records(group, sel).any(|_| true),
            Expr::Test(sel, op, rhs) => records(group, sel).any(|b| test(b, *op, rhs)),
        }
    }
}

fn records<'g>(group: &'g [Tx], sel: &'g Selector) -> impl Iterator<Item = &'g [u8]> + 'g {
    group
        .iter()
        .filter(move |t| sel.level.admits(t.level))
        .flat_map(|t| t.records.iter())
        .filter_map(move |r| sel.part(r))
}

fn test(b: &[u8], op: Op, rhs: &Operand) -> bool {
    match (op, rhs) {
        (Op::StrEq, Operand::Str(s)) => b == s.as_bytes(),
        (Op::StrNe, Operand::Str(s)) => b != s.as_bytes(),
        (Op::Match, Operand::Re(re)) => re.is_match(b).unwrap_or(false),
        (Op::NoMatch, Operand::Re(re)) => !re.is_match(b).unwrap_or(true),
        (_, Operand::Int(n)) => {
            let Some((v, _)) = num_prefix(&String::from_utf8_lossy(b)) else { return false };
            // A fractional record value is compared by its integral part.
            op.cmp(v.trunc() as i64, *n)
        }
        (_, Operand::Float(f)) => {
            let Some((v, _)) = num_prefix(&String::from_utf8_lossy(b)) else { return false };
            op.cmp(v, *f)
        }
        _ => false,
    }
}

struct Parser<'a> {
    line: &'a str,
    toks: Vec<(Tok, usize, usize)>,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }

    fn err_here(&self, message: impl Into<String>) -> QueryError {
        let (_, pos, len) = self.toks[self.i];
        QueryError { message: message.into(), line: self.line.to_string(), pos, len, caret: None }
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Eoi => "end of input".to_string(),
            _ => {
                let (_, pos, len) = self.toks[self.i];
                format!("'{}'", self.line.chars().skip(pos).take(len).collect::<String>())
            }
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(x) if x == w)
    }

    fn expect(&mut self, c: char) -> Result<(), QueryError> {
        if *self.peek() == Tok::Punct(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err_here(format!("Expected '{c}' got {}", self.describe())))
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.and()?;
        while self.is_word("or") {
            self.i += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.not()?;
        while self.is_word("and") {
            self.i += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, QueryError> {
        if self.is_word("not") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if *self.peek() == Tok::Punct('(') {
            self.i += 1;
            let e = self.or()?;
            self.expect(')')?;
            return Ok(e);
        }
        self.test()
    }

    fn integer(&mut self) -> Result<i64, QueryError> {
        match self.peek().clone() {
            Tok::Word(w) | Tok::Str(w) => match w.parse::<i64>() {
                Ok(n) => {
                    self.i += 1;
                    Ok(n)
                }
                Err(_) => Err(self.err_here("Integer parse error")),
            },
            _ => Err(self.err_here(format!("Expected integer got {}", self.describe()))),
        }
    }

    fn test(&mut self) -> Result<Expr, QueryError> {
        let selects = |t: &Tok| matches!(t, Tok::Punct(',' | '[' | ':'));
        if self.is_word("vxid") && !selects(&self.toks[self.i + 1].0) {
            self.i += 1;
            let op = match self.peek() {
                Tok::Op(op) if op.numeric() => *op,
                _ => return Err(self.err_here(format!("Expected vxid operator got {}", self.describe()))),
            };
            self.i += 1;
            return Ok(Expr::Vxid(op, self.vxid()?));
        }
        let sel = self.selector()?;
        let op = match self.peek() {
            Tok::Op(op) => *op,
            Tok::Word(w) if w != "and" && w != "or" => {
                return Err(self.err_here(format!("Expected operator got {}", self.describe())));
            }
            _ => return Ok(Expr::Exists(sel)),
        };
        self.i += 1;
        let (tok, pos, len) = self.toks[self.i].clone();
        let text = match tok {
            Tok::Word(w) | Tok::Str(w) => w,
            _ => {
                let what = match op {
                    Op::Match | Op::NoMatch => "regular expression",
                    Op::StrEq | Op::StrNe => "string",
                    _ => "number",
                };
                let got = match tok {
                    Tok::Eoi => String::new(),
                    _ => self.line.chars().skip(pos).take(len).collect(),
                };
                return Err(self.err_here(format!("Expected {what} got '{got}'")));
            }
        };
        let rhs = match op {
            Op::StrEq | Op::StrNe => Operand::Str(text),
            Op::Match | Op::NoMatch => match Regex::new(&text) {
                Ok(re) => Operand::Re(re),
                Err(e) => {
                    // Display is "PCRE2: error compiling pattern at offset N: message".
                    let full = e.to_string();
                    let msg = full.rsplit_once(": ").map_or(full.as_str(), |(_, m)| m);
                    let caret = e.offset().map(|o| pos + o);
                    return Err(QueryError {
                        message: format!("Regular expression error: {msg}"),
                        line: self.line.to_string(),
                        pos,
                        len,
                        caret,
                    });
                }
            },
            _ if text.contains(['.', 'e', 'E']) => match text.parse::<f64>() {
                Ok(f) => Operand::Float(f),
                Err(_) => return Err(self.err_here("Floating point parse error")),
            },
            _ => match text.parse::<i64>() {
                Ok(n) => Operand::Int(n),
                Err(_) => return Err(self.err_here("Integer parse error")),
            },
        };
        self.i += 1;
        Ok(Expr::Test(sel, op, rhs))
    }

    /// A vxid test's operand: an integer, and nothing else.
    fn vxid(&mut self) -> Result<i64, QueryError> {
        match self.peek().clone() {
            Tok::Word(w) | Tok::Str(w) if w.parse::<i64>().is_ok() => {
                self.i += 1;
                Ok(w.parse().unwrap_or_default())
            }
            _ => Err(self.err_here(format!("Expected integer got {}", self.describe()))),
        }
    }

    /// A selector naming `vxid` with anything else (a level, other tags,
    /// a prefix or a field) is refused, as varnishlog refuses it.
    fn selector(&mut self) -> Result<Selector, QueryError> {
        let start = self.i;
        let sel = self.selector_parts()?;
        if sel.1 {
            let mut e = self.err_here("Unexpected taglist selection for vxid");
            e.pos = self.toks[start].1;
            return Err(e);
        }
        Ok(sel.0)
    }

    /// The selector, and whether it named `vxid`.
    fn selector_parts(&mut self) -> Result<(Selector, bool), QueryError> {
        let mut level = Level::Any;
        if *self.peek() == Tok::Punct('{') {
            self.i += 1;
            let Tok::Word(w) = self.peek().clone() else {
                return Err(self.err_here(format!("Expected integer got {}", self.describe())));
            };
            let (num, kind) = match w.strip_suffix('+') {
                Some(n) => (n, 1),
                None => match w.strip_suffix('-') {
                    Some(n) => (n, 2),
                    None => (w.as_str(), 0),
                },
            };
            let n: usize = num.parse().map_err(|_| {
                // Digits then something else: the limit's syntax is wrong.
                let digits = num.starts_with(|c: char| c.is_ascii_digit());
                self.err_here(if digits { "Syntax error in level limit" } else { "Expected positive integer" })
            })?;
            level = match kind {
                1 => Level::AtLeast(n),
                2 => Level::AtMost(n),
                _ => Level::Exactly(n),
            };
            self.i += 1;
            self.expect('}')?;
        }
        let mut tags = [0u64; 2];
        let mut vxid = false;
        loop {
            let Tok::Word(w) = self.peek().clone() else {
                return Err(self.err_here(format!("Expected VSL tag name got {}", self.describe())));
            };
            if w == "vxid" {
                vxid = true;
                self.i += 1;
                if *self.peek() != Tok::Punct(',') {
                    break;
                }
                self.i += 1;
                continue;
            }
            let before = tags;
            for t in glob(&w).map_err(|m| self.err_here(m.query_message()))? {
                tags[t as usize / 64] |= 1 << (t as usize % 64);
            }
            if tags == before {
                return Err(self.err_here("Tag name matches zero tags"));
            }
            self.i += 1;
            if *self.peek() != Tok::Punct(',') {
                break;
            }
            self.i += 1;
        }
        let mut prefix = None;
        if *self.peek() == Tok::Punct(':') {
            self.i += 1;
            match self.peek().clone() {
                Tok::Word(w) | Tok::Str(w) => prefix = Some(w),
                _ => return Err(self.err_here(format!("Expected string got {}", self.describe()))),
            }
            self.i += 1;
        }
        let mut field = None;
        if *self.peek() == Tok::Punct('[') {
            self.i += 1;
            // A word that is not a positive number is refused at itself.
            let at = self.i;
            let n = match self.peek().clone() {
                Tok::Word(w) => w.parse::<usize>().ok(),
                _ => usize::try_from(self.integer()?).ok(),
            };
            let Some(n) = n.filter(|n| *n > 0) else {
                self.i = at;
                return Err(self.err_here("Expected positive integer"));
            };
            self.i = at + 1;
            field = Some(n);
            self.expect(']')?;
        }
        Ok((Selector { level, tags, prefix, field }, vxid))
    }
}

/// Joins the lines a backslash continues, outside quoted strings and
/// comments only: a string cannot go on to the next line, as in
/// varnishlog, where that is an unterminated string.
fn join_continued(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\n') => {
                quote = None;
                comment = false;
            }
            _ if comment => {}
            (None, '#') => comment = true,
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
                out.push(' ');
                continue;
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(_), '\\') if chars.peek().is_some_and(|&n| n != '\n') => {
                out.push(c);
                out.extend(chars.next());
                continue;
            }
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Why a tag name or glob names no tag (`VSL_Glob2Tags`' negative answers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GlobError {
    /// No tag has that name or matches that glob.
    Zero,
    /// A name that is the beginning of several tags' names.
    Ambiguous,
    /// A star anywhere but at one end (or at both).
    Syntax,
}

impl GlobError {
    /// The words of a query's error.
    pub fn query_message(self) -> &'static str {
        match self {
            GlobError::Zero => "Tag name matches zero tags",
            GlobError::Ambiguous => "Tag name is ambiguous",
            GlobError::Syntax => "Syntax error in tag name",
        }
    }
}

/// The tags a tag name or glob names (`ReqURL`, `Req*`, `*Header`, `*`),
/// case-insensitively, as `-i`, `-x` and queries take them
/// (`VSL_Glob2Tags`): a name without a star is a tag's whole name or the
/// beginning of exactly one tag's name.
pub fn glob(pattern: &str) -> Result<Vec<Tag>, GlobError> {
    let p = pattern.to_ascii_lowercase();
    let names = || NAMES.iter().zip(ALL).map(|(n, t)| (n.to_ascii_lowercase(), *t));
    let found: Vec<Tag> = if p == "*" {
        ALL.to_vec()
    } else if let Some(suffix) = p.strip_prefix('*') {
        if suffix.contains('*') {
            return Err(GlobError::Syntax);
        }
        names().filter(|(n, _)| n.ends_with(suffix)).map(|(_, t)| t).collect()
    } else if let Some(prefix) = p.strip_suffix('*') {
        if prefix.contains('*') {
            return Err(GlobError::Syntax);
        }
        names().filter(|(n, _)| n.starts_with(prefix)).map(|(_, t)| t).collect()
    } else if p.contains('*') {
        return Err(GlobError::Syntax);
    } else if let Some((_, t)) = names().find(|(n, _)| *n == p) {
        vec![t]
    } else {
        let hits: Vec<Tag> = names().filter(|(n, _)| n.starts_with(&p)).map(|(_, t)| t).collect();
        if hits.len() > 1 {
            return Err(GlobError::Ambiguous);
        }
        hits
    };
    if found.is_empty() {
        return Err(GlobError::Zero);
    }
    Ok(found)
}

/// A compiled `-q` query.
#[derive(Debug)]
pub struct Query {
    expr: Expr,
}

impl Query {
    /// Compiles a query: one or more lines, or-ed together, with `#`
    /// comments and backslash-newline continuations.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let joined = join_continued(text);
        let mut expr: Option<Expr> = None;
        for raw in joined.lines() {
            let line = strip_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            let toks = Lexer::run(line)?;
            let mut p = Parser { line, toks, i: 0 };
            let e = p.or()?;
            if *p.peek() != Tok::Eoi {
                return Err(p.err_here("Syntax error"));
            }
            expr = Some(match expr {
                Some(prev) => Expr::Or(Box::new(prev), Box::new(e)),
                None => e,
            });
        }
        match expr {
            Some(expr) => Ok(Query { expr }),
            None => Err(QueryError {
                message: "Expected VSL tag name got end of input".into(),
                line: String::new(),
                pos: 0,
                len: 0,
                caret: None,
            }),
        }
    }

    /// Whether the group matches.
    pub fn matches(&self, group: &[Tx]) -> bool {
        self.expr.eval(group)
    }
}

/// The line up to a `#` that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut esc = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return &line[..i],
            None => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::tests::{rec, sample};
    use crate::group::{Grouper, Grouping};

    fn groups(mode: Grouping) -> Vec<Vec<Tx>> {
        let mut g = Grouper::new(mode);
        for r in sample() {
            g.feed(r);
        }
        let mut v = Vec::new();
        while let Some(x) = g.pop() {
            v.push(x);
        }
        v
    }

    /// The vxids of the tops of the groups the query matches.
    fn q(mode: Grouping, query: &str) -> Vec<u32> {
        let q = Query::parse(query).unwrap_or_else(|e| panic!("{e}"));
        groups(mode).iter().filter(|g| q.matches(g)).map(|g| g[0].vxid).collect()
    }

    fn v(query: &str) -> Vec<u32> {
        q(Grouping::Vxid, query)
    }

    fn err(query: &str) -> String {
        Query::parse(query).unwrap_err().to_string()
    }

    #[test]
    fn bare_selector_means_exists() {
        assert_eq!(v("ReqURL"), [1003, 1001]);
        assert_eq!(v("BerespStatus"), [1002, 1004]);
        assert_eq!(v("SessClose"), [1000]);
    }

    #[test]
    fn string_operators() {
        assert_eq!(v("ReqURL eq \"/esi\""), [1003]);
        assert_eq!(v("ReqURL eq '/index.html'"), [1001]);
        assert_eq!(v("ReqURL ne \"/esi\""), [1001]);
        assert_eq!(v("ReqHeader:host eq example.com"), [1001]);
        assert_eq!(v("ReqHeader:HOST eq \"example.com\""), [1001]);
        assert_eq!(v("ReqHeader:Hos eq example.com"), Vec::<u32>::new());
    }

    #[test]
    fn numeric_operators() {
        assert_eq!(v("BerespStatus == 200"), [1002]);
        assert_eq!(v("BerespStatus != 200"), [1004]);
        assert_eq!(v("BerespStatus >= 500"), [1004]);
        assert_eq!(v("BerespStatus > 503"), Vec::<u32>::new());
        assert_eq!(v("BerespStatus < 503"), [1002]);
        assert_eq!(v("BerespStatus <= 503"), [1002, 1004]);
        // Not a number: never true.
        assert_eq!(v("ReqURL == 1"), Vec::<u32>::new());
    }

    #[test]
    fn fields_and_floats() {
        assert_eq!(v("Timestamp:Process[2] > 0.5"), [1003]);
        assert_eq!(v("Timestamp:Resp[2] > 0.8"), [1001]);
        assert_eq!(v("Timestamp:Resp[3] < 0.6"), [1001]);
        // An integer operand compares the integral part: 1.0 == 1.
        assert_eq!(v("Timestamp:Resp[2] == 1"), [1001]);
        assert_eq!(v("Timestamp:Resp[9]"), Vec::<u32>::new());
        assert_eq!(v("Begin[3] eq esi"), [1003]);
        assert_eq!(v("Link[1] eq bereq"), [1003, 1001]);
        assert!(Query::parse("1e3 == 1").is_err(), "1e3 is no tag");
    }

    #[test]
    fn regexes() {
        assert_eq!(v("ReqURL ~ \"^/ind\""), [1001]);
        assert_eq!(v("ReqURL ~ esi"), [1003]);
        assert_eq!(v("ReqURL !~ esi"), [1001]);
        assert_eq!(v("ReqHeader:host ~ \"(?i)EXAMPLE\""), [1001]);
    }

    #[test]
    fn booleans_and_precedence() {
        assert_eq!(v("ReqURL and not ReqURL ~ esi"), [1001]);
        assert_eq!(v("not ReqURL"), [1002, 1004, 1000]);
        assert_eq!(v("BerespStatus == 503 or ReqURL eq \"/esi\""), [1004, 1003]);
        // and binds tighter than or.
        assert_eq!(v("SessClose or ReqURL and BerespStatus"), [1000]);
        assert_eq!(v("(SessClose or ReqURL) and not ReqURL ~ esi"), [1001, 1000]);
        assert_eq!(v("not not SessClose"), [1000]);
    }

    #[test]
    fn tag_lists_and_globs() {
        assert_eq!(v("Bereq*"), [1002]);
        assert_eq!(v("*Status >= 500"), [1004]);
        assert_eq!(v("ReqURL,SessClose"), [1003, 1001, 1000]);
        assert_eq!(v("Req*:host"), [1001]);
        assert_eq!(v("*"), [1002, 1004, 1003, 1001, 1000]);
    }

    #[test]
    fn vxid_queries() {
        assert_eq!(v("vxid == 1003"), [1003]);
        assert_eq!(v("vxid >= 1003"), [1004, 1003]);
        assert_eq!(q(Grouping::Request, "vxid == 1004"), [1001]);
    }

    #[test]
    fn levels_in_groups() {
        assert_eq!(q(Grouping::Request, "{1}BerespStatus"), Vec::<u32>::new());
        assert_eq!(q(Grouping::Request, "{2}BerespStatus == 200"), [1001]);
        assert_eq!(q(Grouping::Request, "{3}BerespStatus == 503"), [1001]);
        assert_eq!(q(Grouping::Request, "{2-}BerespStatus == 503"), Vec::<u32>::new());
        assert_eq!(q(Grouping::Request, "{2+}BerespStatus == 503"), [1001]);
        assert_eq!(q(Grouping::Session, "{2}ReqURL eq \"/esi\""), Vec::<u32>::new());
        assert_eq!(q(Grouping::Session, "{3}ReqURL eq \"/esi\""), [1000]);
    }

    #[test]
    fn several_lines_are_ored_with_comments() {
        assert_eq!(
            v("# catch the ESI\nReqURL eq \"/esi\"\n\n# and 503s\nBerespStatus >= 500 # trailing\n"),
            [1004, 1003]
        );
        assert_eq!(v("BerespStatus \\\n>= \\\n500"), [1004]);
        assert_eq!(v("ReqURL eq \"a#b\" or SessClose"), [1000]);
    }

    #[test]
    fn raw_mode_and_vxid_zero() {
        let q = Query::parse("vxid == 0 and CLI").unwrap();
        let mut g = Grouper::new(Grouping::Raw);
        g.feed(rec(0, Tag::CLI, "Rd ping"));
        g.feed(rec(1001, Tag::ReqURL, "/"));
        assert!(q.matches(&g.pop().unwrap()));
        assert!(!q.matches(&g.pop().unwrap()));
    }

    #[test]
    fn errors_read_as_varnishlogs() {
        assert_eq!(
            err("Foo eq 1"),
            "Query expression error:\nTag name matches zero tags (Pos 1)\nFoo eq 1\n###-----\n"
        );
        assert_eq!(
            err("ReqURL ~"),
            "Query expression error:\nExpected regular expression got '' (Pos 9)\nReqURL ~\n--------\n"
        );
        assert_eq!(
            err("ReqURL == abc"),
            "Query expression error:\nInteger parse error (Pos 11)\nReqURL == abc\n----------###\n"
        );
        assert_eq!(
            err("ReqURL ~ \"(\""),
            "Query expression error:\nRegular expression error: missing closing parenthesis (Pos 11)\nReqURL ~ \"(\"\n---------#^#\n"
        );
        assert_eq!(
            err("{2}ReqURL and (RespStatus"),
            "Query expression error:\nExpected ')' got end of input (Pos 26)\n{2}ReqURL and (RespStatus\n-------------------------\n"
        );
        assert_eq!(
            err("{2}BereqURL eq /nope"),
            "Query expression error:\nSyntax error (Pos 16)\n{2}BereqURL eq /nope\n---------------#----\n"
        );
        assert!(err("ReqURL eq").contains("Expected string got ''"));
        assert!(err("vxid ~ 3").contains("Expected vxid operator"));
        assert!(err("vxid != 3.5").contains("Expected integer got '3.5'"));
        assert!(err("{1a}ReqURL").contains("Syntax error in level limit"));
        assert!(err("{-1}ReqURL").contains("Expected positive integer"));
        assert!(err("ReqHeader:foo[a]").contains("Expected positive integer (Pos 15)"));
        assert!(err("ReqHeader:foo[]").contains("Expected integer got ']'"));
        assert!(Query::parse("RespStatus \\\n== \\\n200").is_ok());
        let toks = Lexer::run(r#""\\nx\"y""#).unwrap();
        assert_eq!(toks[0].0, Tok::Str(r#"\nx"y"#.into()));
        assert!(err("* ~ \"very long \\\nstring\"").contains("Unterminated string"));
        for q in ["vxid[1] >= 1", "{1}vxid <= 1", "vxid,Link > 1", "Link,vxid > 1", "vxid:x == 1"] {
            assert!(err(q).contains("Unexpected taglist selection for vxid"), "{q}");
        }
        assert!(err("ReqURL ReqURL").contains("Expected operator got 'ReqURL' (Pos 8)"));
    }
}
