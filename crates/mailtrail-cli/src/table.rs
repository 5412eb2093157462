//! A small plain-text table: a header, a rule, and aligned columns separated by two spaces.
//!
//! Plain ASCII on purpose: the output is read in terminals, pasted into tickets and diffed in
//! snapshot tests. Cells are cleaned of control characters (webhook data is untrusted and a
//! newline or an escape sequence must not break a row or the operator's terminal), and lines
//! carry no trailing spaces.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table being built.
#[derive(Clone, Debug)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these `(header, alignment)` columns.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            headers: columns.iter().map(|(name, _)| (*name).to_owned()).collect(),
            aligns: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|cell| clean(cell.as_ref()))
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
        self
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rendered table, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .headers
            .iter()
            .enumerate()
            .map(|(column, header)| {
                self.rows
                    .iter()
                    .map(|row| width(&row[column]))
                    .chain([width(header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        self.line(&mut out, &self.headers, &widths);
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        self.line(&mut out, &rule, &widths);
        for row in &self.rows {
            self.line(&mut out, row, &widths);
        }
        out
    }

    fn line(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            let pad = widths[column].saturating_sub(width(cell));
            match self.aligns[column] {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Display width, counted in characters (good enough for the Latin text of subjects and ids).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// Replaces control characters with a space, so one cell stays on one line.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Shortens `text` to at most `max` characters, marking the cut with `...`.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_spaces() {
        let mut table = Table::new(&[("name", Align::Left), ("count", Align::Right)]);
        table.row(["alpha", "1"]).row(["b", "1234567"]);
        assert_eq!(
            table.render(),
            "name     count\n-----  -------\nalpha        1\nb      1234567\n"
        );
    }

    #[test]
    fn control_characters_cannot_break_a_row() {
        let mut table = Table::new(&[("subject", Align::Left)]);
        table.row(["line one\nline two\u{1b}[31m"]);
        let rendered = table.render();
        assert_eq!(rendered.lines().count(), 3, "{rendered}");
        assert!(!rendered.contains('\u{1b}'));
    }

    #[test]
    fn short_rows_are_padded_and_long_text_is_cut() {
        let mut table = Table::new(&[("a", Align::Left), ("b", Align::Right)]);
        table.row(["x"]);
        assert_eq!(table.render(), "a  b\n-  -\nx\n");
        assert_eq!(truncate("abcdefgh", 6), "abc...");
        assert_eq!(truncate("abc", 6), "abc");
    }
}
