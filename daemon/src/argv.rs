//! A command line as one shared allocation: the arguments joined by NUL,
//! as the kernel keeps them. A `Vec<String>` costs a heap block and a
//! 24-byte header per argument: an argv of 2,048 one-letter arguments
//! (what 4 KiB of `x\0x\0...` holds) took about 110 KiB in the process
//! cache and in every event of its children, this takes 4 KiB.

use std::fmt;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Argv {
    /// The arguments, NUL between them (none after the last).
    text: Arc<str>,
    /// Their number: `""` is one empty argument or none.
    count: u32,
}

impl Argv {
    /// From the kernel's form (`a\0b\0`; one trailing NUL is dropped);
    /// invalid UTF-8 is replaced, as everywhere else in the events.
    pub fn from_nul_separated(raw: &[u8]) -> Self {
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        if raw.is_empty() {
            return Self::default();
        }
        let count = raw.iter().filter(|b| **b == 0).count() + 1;
        Self {
            text: String::from_utf8_lossy(raw).into(),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let text: &str = &self.text;
        // `split` on "" yields one empty item: none when there are none.
        text.split('\0').take(self.count as usize)
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of text held (the arguments and the NULs between them).
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }
}

impl Default for Argv {
    fn default() -> Self {
        Self {
            text: "".into(),
            count: 0,
        }
    }
}

/// An argument containing NUL (impossible for a C string, possible for a
/// test's) would split in two: NUL is replaced by U+FFFD.
impl<S: AsRef<str>> FromIterator<S> for Argv {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Self {
        let mut text = String::new();
        let mut count = 0u32;
        for s in items {
            if count > 0 {
                text.push('\0');
            }
            text.push_str(&s.as_ref().replace('\0', "\u{fffd}"));
            count = count.saturating_add(1);
        }
        Self {
            text: text.into(),
            count,
        }
    }
}

impl From<Vec<String>> for Argv {
    fn from(v: Vec<String>) -> Self {
        v.iter().collect()
    }
}

impl fmt::Debug for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_arguments_and_an_empty_argv_differ() {
        let none = Argv::from_nul_separated(b"");
        assert!(none.is_empty());
        assert_eq!(none.iter().count(), 0);
        let two_empty = Argv::from_nul_separated(b"\0\0");
        assert_eq!(two_empty.iter().collect::<Vec<_>>(), ["", ""]);
        let mixed = Argv::from_nul_separated(b"x\0\0y\0");
        assert_eq!(mixed.iter().collect::<Vec<_>>(), ["x", "", "y"]);
        assert_eq!(mixed.len(), 3);
        let built: Argv = ["x", "", "y"].into_iter().collect();
        assert_eq!(built, mixed);
        let nul: Argv = ["a\0b"].into_iter().collect();
        assert_eq!(nul.len(), 1);
    }

    #[test]
    fn a_cut_tail_is_kept_as_far_as_it_was_read() {
        // The kernel's area ends with a NUL unless it was cut at the bound.
        let a = Argv::from_nul_separated(b"/bin/echo\0hello\0world\0");
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            ["/bin/echo", "hello", "world"]
        );
        let cut = Argv::from_nul_separated(b"a\0bc");
        assert_eq!(cut.iter().collect::<Vec<_>>(), ["a", "bc"]);
    }

    #[test]
    fn two_thousand_arguments_take_one_allocation_of_their_text() {
        let raw = b"x\0".repeat(2048);
        let a = Argv::from_nul_separated(&raw);
        assert_eq!(a.len(), 2048);
        assert_eq!(a.text_bytes(), 4095);
        assert!(a.iter().all(|s| s == "x"));
    }
}
