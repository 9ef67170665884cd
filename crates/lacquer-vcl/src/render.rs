//! Renders diagnostics exactly as VCC prints them.
//!
//! A location is `('<name>' Line N Pos M)`, with tabs counted to the next
//! multiple of eight; a range on one line adds ` -- (Pos K)` for its last
//! character. Then the source line (tabs expanded) and a marker line with
//! `#` under the marked bytes and `-` elsewhere, then an empty line.
//! Golden tests in `tests/errors/` pin this against varnishd's own output.

use crate::diag::{Diag, Piece};
use crate::source::{Sources, Span};

/// Renders one diagnostic.
pub fn render(d: &Diag, srcs: &Sources) -> String {
    let mut out = String::new();
    for p in &d.pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Where(sp) => where1(&mut out, srcs, *sp),
            Piece::Where2(a, b) => where2(&mut out, srcs, *a, *b),
        }
    }
    out
}

/// Renders several diagnostics, one after the other.
pub fn render_all(ds: &[Diag], srcs: &Sources) -> String {
    ds.iter().map(|d| render(d, srcs)).collect()
}

/// Line and column (1-based, tabs to multiples of 8) of byte `at`.
fn coord(text: &[u8], at: usize) -> (u32, u32) {
    let mut lin = 1;
    let mut pos = 0u32;
    for &c in &text[..at.min(text.len())] {
        match c {
            b'\n' => {
                lin += 1;
                pos = 0;
            }
            b'\t' => {
                pos &= !7;
                pos += 8;
            }
            _ => pos += 1,
        }
    }
    (lin, pos + 1)
}

fn line_start(text: &[u8], at: usize) -> usize {
    let at = at.min(text.len());
    text[..at].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1)
}

fn line_end(text: &[u8], from: usize) -> usize {
    text[from..].iter().position(|&c| c == b'\n').map_or(text.len(), |i| from + i)
}

fn quote_line(out: &mut String, text: &[u8], l: usize) {
    let mut x = 0u32;
    let mut line = Vec::new();
    for &c in &text[l..line_end(text, l)] {
        if c == b'\t' {
            let y = (x & !7) + 8;
            while x < y {
                line.push(b' ');
                x += 1;
            }
        } else {
            line.push(c);
            x += 1;
        }
    }
    out.push_str(&String::from_utf8_lossy(&line));
    out.push('\n');
}

fn mark_line(out: &mut String, text: &[u8], l: usize, b: usize, e: usize) {
    let mut x = 0u32;
    let mut y = 0u32;
    for (i, &c) in text[l..line_end(text, l)].iter().enumerate() {
        let p = l + i;
        let m = if p >= b && p < e { '#' } else { '-' };
        if c == b'\t' {
            y = (y & !7) + 8;
        } else {
            y += 1;
        }
        while x < y {
            out.push(m);
            x += 1;
        }
    }
    out.push('\n');
}

fn where1(out: &mut String, srcs: &Sources, sp: Span) {
    let s = srcs.get(sp.src);
    let (lin, pos) = coord(&s.text, sp.start as usize);
    out.push_str(&format!("('{}' Line {} Pos {})\n", s.name, lin, pos));
    let l = line_start(&s.text, sp.start as usize);
    quote_line(out, &s.text, l);
    mark_line(out, &s.text, l, sp.start as usize, sp.end as usize);
    out.push('\n');
}

fn where2(out: &mut String, srcs: &Sources, a: Span, b: Span) {
    if a.src != b.src {
        return where1(out, srcs, a);
    }
    let s = srcs.get(a.src);
    let t = &s.text;
    let (b0, e) = (a.start as usize, b.end as usize);
    // VCC prints the last character of the last token even when that token
    // comes before the first (a regex error marks back to the operator).
    let tail = e.saturating_sub(1);
    let l1 = line_start(t, b0);
    let l2 = line_start(t, tail);
    let (lin, pos) = coord(t, b0);
    let (lin2, pos2) = coord(t, tail);
    out.push_str(&format!("('{}' Line {} Pos {})", s.name, lin, pos));
    if l1 == l2 {
        out.push_str(&format!(" -- (Pos {})\n", pos2));
        quote_line(out, t, l1);
        mark_line(out, t, l1, b0, e);
    } else {
        let next = line_end(t, l1) + 1;
        let tail_coord = format!("('{}' Line {} Pos {})", s.name, lin2, pos2);
        if next == l2 {
            out.push_str(" -- ");
            out.push_str(&tail_coord);
        }
        out.push('\n');
        quote_line(out, t, l1);
        mark_line(out, t, l1, b0, e);
        if next != l2 {
            out.push_str("[...]\n");
            out.push_str(&tail_coord);
            out.push('\n');
        }
        quote_line(out, t, l2);
        mark_line(out, t, l2, b0, e);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srcs(text: &str) -> Sources {
        let mut s = Sources::default();
        s.add("/tmp/vt/b.vcl", text);
        s
    }

    #[test]
    fn range_on_one_line_with_tabs() {
        // Read off varnishd 7.1.1 (`varnishd -C`).
        let s = srcs("vcl 4.1;\n\tset req.foo = \"x\";\n");
        let d = Diag::new(vec![
            Piece::text("Symbol not found: 'req.foo'\nAt: "),
            Piece::Where2(Span { src: 0, start: 14, end: 21 }, Span { src: 0, start: 14, end: 21 }),
        ]);
        assert_eq!(
            render(&d, &s),
            "Symbol not found: 'req.foo'\nAt: ('/tmp/vt/b.vcl' Line 2 Pos 13) -- (Pos 19)\n        set req.foo = \"x\";\n------------#######-------\n\n"
        );
    }

    #[test]
    fn single_token() {
        let s = srcs("vcl 4.1;\nsub foo {}\n");
        let d = Diag::at("Unused sub foo, defined:", Span { src: 0, start: 13, end: 16 });
        assert_eq!(
            render(&d, &s),
            "Unused sub foo, defined:\n('/tmp/vt/b.vcl' Line 2 Pos 5)\nsub foo {}\n----###---\n\n"
        );
    }
}
