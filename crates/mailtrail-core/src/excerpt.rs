//! Bounded, printable excerpts of untrusted text, for error messages and logs.
//!
//! An error about a request often quotes it: serde_json's `invalid type: string "…"` carries the
//! offending string whole, and a refused content type is echoed back. Those messages end up in
//! log lines (at info level) and in dead-letter reasons, so a 200 KB string in an unsigned body
//! became a 200 KB log line. An [`Excerpt`] keeps at most [`MAX_EXCERPT_CHARS`] characters of
//! what it quotes, cut on a character boundary and marked as cut, with control characters
//! escaped so a quoted body can neither forge log lines nor drive an operator's terminal.
//!
//! It is built from anything that displays, and stops formatting once full, so a huge message is
//! never formatted whole only to be thrown away.

use std::fmt::{self, Write as _};

/// The most characters an excerpt keeps (escapes count as the characters they print).
pub const MAX_EXCERPT_CHARS: usize = 200;

/// What is appended to an excerpt that was cut.
const CUT_MARK: &str = "… (cut)";

/// Text from a request, bounded and safe to print; the only way to quote input in an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excerpt(String);

impl Excerpt {
    /// The excerpt of what `value` displays.
    pub fn of(value: impl fmt::Display) -> Self {
        let mut writer = BoundedWriter::default();
        // The writer refuses more text once full, which ends the formatting early; that refusal
        // is the expected way out, not an error.
        let _ = write!(writer, "{value}");
        let mut text = writer.text;
        if writer.cut {
            text.push_str(CUT_MARK);
        }
        Self(text)
    }

    /// The bounded text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects up to [`MAX_EXCERPT_CHARS`] printed characters, then refuses the rest.
#[derive(Default)]
struct BoundedWriter {
    text: String,
    chars: usize,
    cut: bool,
}

impl BoundedWriter {
    fn push(&mut self, printed: impl Iterator<Item = char> + Clone) -> fmt::Result {
        let width = printed.clone().count();
        if self.chars + width > MAX_EXCERPT_CHARS {
            self.cut = true;
            return Err(fmt::Error);
        }
        self.text.extend(printed);
        self.chars += width;
        Ok(())
    }
}

impl fmt::Write for BoundedWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if c.is_control() {
                self.push(c.escape_default())?;
            } else {
                self.push(std::iter::once(c))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(Excerpt::of("application/xml").as_str(), "application/xml");
        let exact = "x".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(Excerpt::of(&exact).as_str(), exact);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        for unit in ["x", "é", "€", "😀"] {
            let excerpt = Excerpt::of(unit.repeat(100_000));
            let text = excerpt.as_str();
            assert!(text.ends_with(CUT_MARK), "{unit}");
            assert_eq!(
                text.chars().count(),
                MAX_EXCERPT_CHARS + CUT_MARK.chars().count(),
                "{unit}"
            );
            assert!(text.starts_with(&unit.repeat(MAX_EXCERPT_CHARS)), "{unit}");
        }
    }

    #[test]
    fn control_characters_are_escaped_so_a_quote_cannot_forge_a_log_line() {
        let excerpt = Excerpt::of("a\nlevel=ERROR forged\r\u{1b}[2J\tb");
        assert_eq!(excerpt.as_str(), "a\\nlevel=ERROR forged\\r\\u{1b}[2J\\tb");
        // Escapes count towards the bound.
        let escaped = Excerpt::of("\n".repeat(1000));
        assert_eq!(
            escaped.as_str().chars().count(),
            MAX_EXCERPT_CHARS + CUT_MARK.chars().count()
        );
    }

    #[test]
    fn a_huge_display_is_not_formatted_whole() {
        /// Counts how much of itself was asked for.
        struct Endless(std::cell::Cell<usize>);
        impl fmt::Display for Endless {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for _ in 0..1_000_000 {
                    self.0.set(self.0.get() + 1);
                    f.write_str("y")?;
                }
                Ok(())
            }
        }
        let endless = Endless(std::cell::Cell::new(0));
        let excerpt = Excerpt::of(&endless);
        assert!(excerpt.as_str().ends_with(CUT_MARK));
        assert_eq!(endless.0.get(), MAX_EXCERPT_CHARS + 1);
    }
}
