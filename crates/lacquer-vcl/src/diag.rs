//! Error values: what went wrong and where, as data.
//!
//! A diagnostic is a sequence of pieces — text, and source locations that
//! VCC would quote — in the order VCC prints them. Turning it into text is
//! [`crate::render`]'s job alone, so the wording lives where the check is made
//! and the layout lives in one place.

use crate::source::Span;

/// One part of a diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Literal text, with its own newlines.
    Text(String),
    /// One token, quoted with its coordinates (VCC's `vcc_ErrWhere`).
    Where(Span),
    /// A range from the first token to the last, inclusive
    /// (VCC's `vcc_ErrWhere2`).
    Where2(Span, Span),
}

impl Piece {
    /// A text piece.
    pub fn text(s: impl Into<String>) -> Piece {
        Piece::Text(s.into())
    }
}

/// One diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct Diag {
    pub pieces: Vec<Piece>,
}

impl Diag {
    /// A diagnostic from its pieces.
    pub fn new(pieces: Vec<Piece>) -> Diag {
        Diag { pieces }
    }

    /// The usual shape: a message line, then the offending token.
    pub fn at(msg: impl Into<String>, sp: Span) -> Diag {
        let mut m = msg.into();
        if !m.ends_with('\n') {
            m.push('\n');
        }
        Diag::new(vec![Piece::Text(m), Piece::Where(sp)])
    }

    /// Appends a piece.
    pub fn push(&mut self, p: Piece) -> &mut Diag {
        self.pieces.push(p);
        self
    }

    /// Appends text.
    pub fn text(mut self, s: impl Into<String>) -> Diag {
        self.pieces.push(Piece::Text(s.into()));
        self
    }

    /// Appends a quoted token.
    pub fn place(mut self, sp: Span) -> Diag {
        self.pieces.push(Piece::Where(sp));
        self
    }
}
