//! The virtual screen a `process` writes on, for `-expect-text`,
//! `-expect-cursor` and `-screen_dump` (varnishtest's `vtc_term.c`, which
//! uses FreeBSD's teken).
//!
//! This is a small VT100/xterm subset, what line-oriented programs and
//! simple full-screen ones print: text (UTF-8, one cell per character),
//! CR, LF (scrolling at the bottom of the scroll region), BS, TAB (stops
//! every 8 columns), deferred autowrap at the right margin, and the CSI
//! sequences for cursor movement (`A B C D E F G H d f`), erasing (`J K X
//! P @`), scroll regions and scrolling (`r S T L M`) and save/restore (`s
//! u`, `ESC 7`, `ESC 8`). Rendition (`m`), modes (`h l`) and character
//! sets are accepted and change nothing on the screen's text. Anything
//! else is ignored: programs that depend on it will show it by failing an
//! `-expect-text`, never by a silent pass.

/// A screen of `lines` × `cols` cells and its cursor (0-based inside).
pub struct Screen {
    lines: usize,
    cols: usize,
    cells: Vec<Vec<char>>,
    row: usize,
    col: usize,
    /// The cursor is past the last column: the next character wraps.
    wrap_pending: bool,
    /// The scroll region, first and last line, inclusive.
    top: usize,
    bottom: usize,
    saved: (usize, usize),
    /// An escape sequence being read.
    esc: Option<Vec<u8>>,
    /// Bytes of a UTF-8 character not yet complete.
    utf8: Vec<u8>,
}

impl Screen {
    /// A blank screen, the cursor at the top left.
    pub fn new(lines: usize, cols: usize) -> Screen {
        let (lines, cols) = (lines.max(1), cols.max(1));
        Screen {
            lines,
            cols,
            cells: vec![vec![' '; cols]; lines],
            row: 0,
            col: 0,
            wrap_pending: false,
            top: 0,
            bottom: lines - 1,
            saved: (0, 0),
            esc: None,
            utf8: Vec::new(),
        }
    }

    /// Changes the size, keeping what fits.
    pub fn resize(&mut self, lines: usize, cols: usize) {
        let (lines, cols) = (lines.max(1), cols.max(1));
        self.cells.resize(lines, vec![' '; cols]);
        for l in &mut self.cells {
            l.resize(cols, ' ');
        }
        self.lines = lines;
        self.cols = cols;
        self.top = 0;
        self.bottom = lines - 1;
        self.row = self.row.min(lines - 1);
        self.col = self.col.min(cols - 1);
        self.wrap_pending = false;
    }

    /// Line `n` (0-based) as text, its full width.
    pub fn line(&self, n: usize) -> String {
        self.cells[n].iter().collect()
    }

    /// The number of lines.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The cursor, 1-based line and column as varnishtest reports it.
    pub fn cursor(&self) -> (usize, usize) {
        (self.row + 1, self.col + 1)
    }

    /// `-expect-text LIN COL PAT`: whether `pat` is at line `lin`, column
    /// `col` (1-based; 0 means on any line, or anywhere on the line).
    pub fn has_text(&self, lin: usize, col: usize, pat: &str) -> bool {
        let pat: Vec<char> = pat.chars().collect();
        let at = |l: usize, c: usize| {
            let cells = &self.cells[l];
            c + pat.len() <= cells.len() && cells[c..c + pat.len()] == pat[..]
        };
        let rows: Vec<usize> = if lin == 0 { (0..self.lines).collect() } else { vec![lin - 1] };
        rows.into_iter().filter(|&l| l < self.lines).any(|l| {
            if col == 0 {
                (0..self.cols).any(|c| at(l, c))
            } else {
                at(l, col - 1)
            }
        })
    }

    /// The text at line `lin`, column `col` as long as `len` characters,
    /// for the log (1-based; 0 taken as 1).
    pub fn text_at(&self, lin: usize, col: usize, len: usize) -> String {
        let l = lin.max(1) - 1;
        let c = col.max(1) - 1;
        if l >= self.lines || c >= self.cols {
            return String::new();
        }
        self.cells[l][c..(c + len).min(self.cols)].iter().collect()
    }

    /// Feeds output of the process.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(mut seq) = self.esc.take() {
                seq.push(b);
                if !self.escape(&seq) {
                    self.esc = Some(seq);
                }
                continue;
            }
            if !self.utf8.is_empty() || b >= 0x80 {
                self.utf8.push(b);
                match std::str::from_utf8(&self.utf8) {
                    Ok(s) => {
                        let c = s.chars().next().unwrap_or('?');
                        self.utf8.clear();
                        self.put(c);
                    }
                    Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                        self.utf8.clear();
                        self.put('?');
                    }
                    Err(_) => {}
                }
                continue;
            }
            match b {
                0x1b => self.esc = Some(Vec::new()),
                b'\r' => {
                    self.col = 0;
                    self.wrap_pending = false;
                }
                b'\n' | 0x0b | 0x0c => self.linefeed(),
                0x08 => {
                    self.col = self.col.saturating_sub(1);
                    self.wrap_pending = false;
                }
                b'\t' => {
                    self.col = ((self.col / 8 + 1) * 8).min(self.cols - 1);
                }
                0x20..=0x7e => self.put(b as char),
                _ => {}
            }
        }
    }

    fn put(&mut self, c: char) {
        if self.wrap_pending {
            self.col = 0;
            self.linefeed();
        }
        self.cells[self.row][self.col] = c;
        if self.col + 1 == self.cols {
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }

    fn linefeed(&mut self) {
        self.wrap_pending = false;
        if self.row == self.bottom {
            self.scroll_up(1);
        } else if self.row + 1 < self.lines {
            self.row += 1;
        }
    }

    fn blank(&self) -> Vec<char> {
        vec![' '; self.cols]
    }

    /// Scrolls the scroll region up by `n` lines.
    fn scroll_up(&mut self, n: usize) {
        for _ in 0..n.min(self.bottom + 1 - self.top) {
            self.cells.remove(self.top);
            self.cells.insert(self.bottom, self.blank());
        }
    }

    fn scroll_down(&mut self, n: usize) {
        for _ in 0..n.min(self.bottom + 1 - self.top) {
            self.cells.remove(self.bottom);
            self.cells.insert(self.top, self.blank());
        }
    }

    fn goto(&mut self, row: usize, col: usize) {
        self.row = row.min(self.lines - 1);
        self.col = col.min(self.cols - 1);
        self.wrap_pending = false;
    }

    /// Handles the escape sequence `seq` (after ESC); false while it is
    /// not complete.
    fn escape(&mut self, seq: &[u8]) -> bool {
        match seq[0] {
            b'[' => {
                let Some(&last) = seq.last() else { return false };
                if seq.len() == 1 || !(0x40..=0x7e).contains(&last) {
                    // Give up on a runaway sequence.
                    return seq.len() > 64;
                }
                let body = &seq[1..seq.len() - 1];
                let private = body.first().is_some_and(|c| matches!(c, b'?' | b'=' | b'>' | b'<'));
                if !private {
                    self.csi(body, last);
                }
                true
            }
            // Character sets: one more byte.
            b'(' | b')' | b'*' | b'+' | b'#' | b'%' => seq.len() >= 2,
            // Operating system commands, up to BEL or ST.
            b']' => seq.last() == Some(&0x07) || seq.ends_with(b"\x1b\\") || seq.len() > 256,
            b'7' => {
                self.saved = (self.row, self.col);
                true
            }
            b'8' => {
                let (r, c) = self.saved;
                self.goto(r, c);
                true
            }
            b'D' => {
                self.linefeed();
                true
            }
            b'E' => {
                self.col = 0;
                self.linefeed();
                true
            }
            b'M' => {
                if self.row == self.top {
                    self.scroll_down(1);
                } else {
                    self.row = self.row.saturating_sub(1);
                }
                true
            }
            b'c' => {
                *self = Screen::new(self.lines, self.cols);
                true
            }
            _ => true,
        }
    }

    fn csi(&mut self, body: &[u8], fin: u8) {
        let text = String::from_utf8_lossy(body);
        let params: Vec<usize> = text.split(';').map(|p| p.trim().parse().unwrap_or(0)).collect();
        let p = |i: usize| params.get(i).copied().unwrap_or(0);
        let n = p(0).max(1);
        let (row, col) = (self.row, self.col);
        match fin {
            b'A' => self.goto(row.saturating_sub(n).max(if row >= self.top { self.top } else { 0 }), col),
            b'B' | b'e' => {
                let limit = if row <= self.bottom { self.bottom } else { self.lines - 1 };
                self.goto((row + n).min(limit), col)
            }
            b'C' | b'a' => self.goto(row, col + n),
            b'D' => self.goto(row, col.saturating_sub(n)),
            b'E' => self.goto(row + n, 0),
            b'F' => self.goto(row.saturating_sub(n), 0),
            b'G' | b'`' => self.goto(row, n - 1),
            b'd' => self.goto(n - 1, col),
            b'H' | b'f' => self.goto(p(0).max(1) - 1, p(1).max(1) - 1),
            b'J' => {
                let blank = self.blank();
                match p(0) {
                    0 => {
                        self.cells[row][col..].fill(' ');
                        for l in row + 1..self.lines {
                            self.cells[l] = blank.clone();
                        }
                    }
                    1 => {
                        self.cells[row][..=col].fill(' ');
                        for l in 0..row {
                            self.cells[l] = blank.clone();
                        }
                    }
                    _ => {
                        for l in 0..self.lines {
                            self.cells[l] = blank.clone();
                        }
                    }
                }
            }
            b'K' => match p(0) {
                0 => self.cells[row][col..].fill(' '),
                1 => self.cells[row][..=col].fill(' '),
                _ => self.cells[row].fill(' '),
            },
            b'X' => {
                let end = (col + n).min(self.cols);
                self.cells[row][col..end].fill(' ');
            }
            b'P' => {
                for _ in 0..n.min(self.cols - col) {
                    self.cells[row].remove(col);
                    self.cells[row].push(' ');
                }
            }
            b'@' => {
                for _ in 0..n.min(self.cols - col) {
                    self.cells[row].insert(col, ' ');
                    self.cells[row].pop();
                }
            }
            b'L' | b'M' if (self.top..=self.bottom).contains(&row) => {
                let saved_top = self.top;
                self.top = row;
                if fin == b'L' {
                    self.scroll_down(n);
                } else {
                    self.scroll_up(n);
                }
                self.top = saved_top;
            }
            b'S' => self.scroll_up(n),
            b'T' => self.scroll_down(n),
            b'r' => {
                let top = p(0).max(1) - 1;
                let bottom = if p(1) == 0 { self.lines } else { p(1) }.min(self.lines) - 1;
                if top < bottom {
                    self.top = top;
                    self.bottom = bottom;
                    self.goto(0, 0);
                }
            }
            b's' => self.saved = (row, col),
            b'u' => {
                let (r, c) = self.saved;
                self.goto(r, c);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_and_cursor() {
        let mut s = Screen::new(24, 80);
        s.feed(b"foo\r\nfoo\r\n");
        assert!(s.has_text(2, 1, "foo"));
        assert!(s.has_text(0, 0, "foo"));
        assert!(!s.has_text(3, 0, "foo"));
        assert_eq!(s.cursor(), (3, 1));
    }

    #[test]
    fn tabs_and_cursor_addressing() {
        // What varnishtest's screen shows for this output.
        let mut s = Screen::new(24, 80);
        s.feed(b"hello\r\nab\tc\x1b[2;5Hz");
        assert_eq!(s.line(1).trim_end(), "ab  z   c");
        assert_eq!(s.cursor(), (2, 6));
    }

    #[test]
    fn erasing_wrapping_and_scrolling() {
        let mut s = Screen::new(3, 5);
        s.feed(b"abcdefg");
        assert_eq!(s.line(0), "abcde");
        assert_eq!(s.line(1), "fg   ");
        s.feed(b"\x1b[1;3H\x1b[K");
        assert_eq!(s.line(0), "ab   ");
        s.feed(b"\r\n\r\n\r\nxyz");
        assert_eq!(s.line(2), "xyz  ");
        assert_eq!(s.line(0), "fg   ", "scrolled up once");
        s.feed(b"\x1b[2J\x1b[1m\xe2\x82\xac!");
        assert_eq!(s.line(2), "   €!");
    }
}
