//! The lines the user typed before, walked with Up and Down in any front
//! end's input line (the terminal client's and the desktop client's), with
//! a bound on how many are kept. Moved here from the terminal client so
//! both front ends recall lines the same way.

use std::collections::VecDeque;

/// Typed lines remembered for Up/Down; past this the oldest is forgotten.
pub const TYPED_HISTORY: usize = 200;

/// Lines typed before, walked with Up and Down.
#[derive(Debug, Default)]
pub struct TypedHistory {
    entries: VecDeque<String>,
    /// Which entry is shown; `None`: the line being typed.
    pos: Option<usize>,
    /// The line being typed when Up was first pressed.
    draft: String,
}

impl TypedHistory {
    pub fn push(&mut self, line: &str) {
        self.pos = None;
        self.draft.clear();
        if line.trim().is_empty() || self.entries.back().is_some_and(|l| l == line) {
            return;
        }
        self.entries.push_back(line.to_owned());
        if self.entries.len() > TYPED_HISTORY {
            self.entries.pop_front();
        }
    }

    /// The older entry to show, if any.
    pub fn up(&mut self, current: &str) -> Option<&str> {
        let pos = match self.pos {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_owned();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(p) => p - 1,
        };
        self.pos = Some(pos);
        self.entries.get(pos).map(String::as_str)
    }

    /// The newer entry to show, or the draft past the newest.
    pub fn down(&mut self) -> Option<String> {
        let p = self.pos?;
        if p + 1 < self.entries.len() {
            self.pos = Some(p + 1);
            self.entries.get(p + 1).cloned()
        } else {
            self.pos = None;
            Some(std::mem::take(&mut self.draft))
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_down_keep_the_draft_and_the_bound() {
        let mut h = TypedHistory::default();
        h.push("one");
        h.push("two");
        h.push("two");
        assert_eq!(h.len(), 2);
        assert_eq!(h.up("draft"), Some("two"));
        assert_eq!(h.up(""), Some("one"));
        assert_eq!(h.up(""), None);
        assert_eq!(h.down().as_deref(), Some("two"));
        assert_eq!(h.down().as_deref(), Some("draft"));
        assert_eq!(h.down(), None);
        for i in 0..TYPED_HISTORY + 10 {
            h.push(&i.to_string());
        }
        assert_eq!(h.len(), TYPED_HISTORY);
    }
}
