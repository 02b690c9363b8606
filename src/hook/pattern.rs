//! Path patterns and the question "can these two patterns match the same
//! path?", which decides whether a hook's glob could reach a denied path.
//!
//! Hook globs follow Python's `glob.glob` (what apport's hookutils use):
//! `*` is any run of characters but `/`, `?` one such character, `[...]` a
//! class (`[!...]` or `[^...]` negated); none of them matches `/`, and a
//! name starting with `.` is only matched by a pattern component that starts
//! with a literal `.`. There is no `**`, no braces and no escaping. Deny-list
//! patterns use `*` the same way and `**` for "any characters, `/` included";
//! they match hidden names like any other.

use std::collections::BTreeSet;

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?` (negated, no ranges) or `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// Any run of characters but `/`.
    Star,
    /// Any run of characters (deny-list patterns only).
    Globstar,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    toks: Vec<Tok>,
    /// Per token: its path component starts with a literal `.`.
    dot_component: Vec<bool>,
    /// Wildcards do not match a leading `.` (glob semantics).
    hidden_rule: bool,
}

/// Why a glob is not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GlobError {
    Globstar,
    Braces,
    UnclosedClass,
    SlashInClass,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GlobError::Globstar => {
                "`**` (recursive globbing) is not supported: name the directory depth with `*/`"
            }
            GlobError::Braces => "braces are not expanded: write one step per pattern",
            GlobError::UnclosedClass => "`[` starts a character class that is never closed",
            GlobError::SlashInClass => "a character class cannot match `/`",
        })
    }
}

impl Pattern {
    fn new(toks: Vec<Tok>, hidden_rule: bool) -> Self {
        let mut dot_component = Vec::with_capacity(toks.len());
        let mut current = false;
        let mut at_start = true;
        for t in &toks {
            if at_start {
                current = *t == Tok::Lit('.');
            }
            dot_component.push(current);
            at_start = *t == Tok::Lit('/');
        }
        Self {
            toks,
            dot_component,
            hidden_rule,
        }
    }

    /// A path taken literally (a `file` step, a command argument).
    pub(crate) fn literal(path: &str) -> Self {
        Self::new(path.chars().map(Tok::Lit).collect(), false)
    }

    /// A deny-list pattern: `**` any characters, `*` any but `/`.
    pub(crate) fn deny(pattern: &str) -> Self {
        let mut toks = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '*' {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    toks.push(Tok::Globstar);
                } else {
                    toks.push(Tok::Star);
                }
            } else {
                toks.push(Tok::Lit(c));
            }
        }
        Self::new(toks, false)
    }

    /// A hook glob.
    pub(crate) fn glob(glob: &str) -> Result<Self, GlobError> {
        let mut toks = Vec::new();
        let mut chars = glob.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if chars.peek() == Some(&'*') {
                        return Err(GlobError::Globstar);
                    }
                    toks.push(Tok::Star);
                }
                '?' => toks.push(Tok::Class {
                    negated: true,
                    ranges: Vec::new(),
                }),
                '{' | '}' => return Err(GlobError::Braces),
                '[' => {
                    let mut negated = false;
                    if matches!(chars.peek(), Some('!' | '^')) {
                        negated = true;
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(c) = chars.next() else {
                            return Err(GlobError::UnclosedClass);
                        };
                        if c == ']' && !first {
                            break;
                        }
                        if c == '/' {
                            return Err(GlobError::SlashInClass);
                        }
                        first = false;
                        let mut end = c;
                        if chars.peek() == Some(&'-') {
                            let mut ahead = chars.clone();
                            ahead.next();
                            if let Some(&e) = ahead.peek()
                                && e != ']'
                            {
                                chars.next();
                                chars.next();
                                if e == '/' {
                                    return Err(GlobError::SlashInClass);
                                }
                                end = e;
                            }
                        }
                        ranges.push((c, end));
                    }
                    toks.push(Tok::Class { negated, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Self::new(toks, true))
    }

    /// Whether the pattern has any wildcard.
    pub(crate) fn has_wildcard(&self) -> bool {
        self.toks.iter().any(|t| !matches!(t, Tok::Lit(_)))
    }

    /// Where the token at `i` goes on `c`: `Some(true)` stays, `Some(false)`
    /// advances, `None` fails.
    fn step(&self, i: usize, c: char, at_component_start: bool) -> Option<bool> {
        let tok = self.toks.get(i)?;
        if self.hidden_rule
            && at_component_start
            && c == '.'
            && !self.dot_component.get(i).copied().unwrap_or(false)
        {
            return None;
        }
        match tok {
            Tok::Lit(l) => (*l == c).then_some(false),
            Tok::Class { negated, ranges } => {
                let inside = ranges.iter().any(|(a, b)| *a <= c && c <= *b);
                (c != '/' && inside != *negated).then_some(false)
            }
            Tok::Star => (c != '/').then_some(true),
            Tok::Globstar => Some(true),
        }
    }

    fn can_skip(&self, i: usize) -> bool {
        matches!(self.toks.get(i), Some(Tok::Star | Tok::Globstar))
    }

    fn boundary_chars(&self, out: &mut BTreeSet<char>) {
        for t in &self.toks {
            match t {
                Tok::Lit(c) => {
                    out.insert(*c);
                }
                Tok::Class { ranges, .. } => {
                    for (a, b) in ranges {
                        for c in [*a, *b] {
                            out.insert(c);
                            let n = u32::from(c);
                            for m in [n.checked_sub(1), n.checked_add(1)].into_iter().flatten() {
                                if let Some(m) = char::from_u32(m) {
                                    out.insert(m);
                                }
                            }
                        }
                    }
                }
                Tok::Star | Tok::Globstar => {}
            }
        }
    }
}

/// Largest product automaton searched; beyond it the answer is "yes" (the
/// safe side for a deny-list). Paths are capped well below this.
const MAX_STATES: usize = 4 * 1024 * 1024;

/// Whether some path matches both patterns.
///
/// A breadth-first search of the product of the two patterns' automata. The
/// alphabet is every character either pattern names, class boundaries and
/// their neighbours, `/`, and one character neither names: enough to tell
/// every pair of token kinds apart.
pub(crate) fn intersects(a: &Pattern, b: &Pattern) -> bool {
    let (la, lb) = (a.toks.len(), b.toks.len());
    let (wa, wb) = (la.saturating_add(1), lb.saturating_add(1));
    let Some(states) = wa.checked_mul(wb).and_then(|n| n.checked_mul(2)) else {
        return true;
    };
    if states > MAX_STATES {
        return true;
    }
    let mut alphabet = BTreeSet::new();
    alphabet.insert('/');
    a.boundary_chars(&mut alphabet);
    b.boundary_chars(&mut alphabet);
    if let Some(fresh) = ('\u{E000}'..='\u{F8FF}').find(|c| !alphabet.contains(c)) {
        alphabet.insert(fresh);
    }
    let index = |i: usize, j: usize, s: bool| {
        i.saturating_mul(wb)
            .saturating_add(j)
            .saturating_mul(2)
            .saturating_add(usize::from(s))
    };
    let mut seen = vec![false; states];
    let mut queue = vec![(0usize, 0usize, false)];
    while let Some((i, j, s)) = queue.pop() {
        let Some(slot) = seen.get_mut(index(i, j, s)) else {
            continue;
        };
        if *slot {
            continue;
        }
        *slot = true;
        if i == la && j == lb {
            return true;
        }
        if a.can_skip(i) {
            queue.push((i.saturating_add(1), j, s));
        }
        if b.can_skip(j) {
            queue.push((i, j.saturating_add(1), s));
        }
        for &c in &alphabet {
            if let (Some(sa), Some(sb)) = (a.step(i, c, s), b.step(j, c, s)) {
                let ni = if sa { i } else { i.saturating_add(1) };
                let nj = if sb { j } else { j.saturating_add(1) };
                queue.push((ni, nj, c == '/'));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn g(s: &str) -> Pattern {
        Pattern::glob(s).unwrap()
    }

    #[test]
    fn literal_paths_meet_deny_patterns() {
        assert!(intersects(
            &Pattern::literal("/etc/shadow"),
            &Pattern::deny("/etc/shadow*")
        ));
        assert!(intersects(
            &Pattern::literal("/home/u/.ssh/id_rsa"),
            &Pattern::deny("**/.ssh/**")
        ));
        assert!(!intersects(
            &Pattern::literal("/etc/passwd"),
            &Pattern::deny("/etc/shadow*")
        ));
        assert!(intersects(
            &Pattern::literal("/etc/ssh/ssh_host_rsa_key"),
            &Pattern::deny("/etc/ssh/*_key")
        ));
        assert!(!intersects(
            &Pattern::literal("/etc/ssh/ssh_host_rsa_key.pub"),
            &Pattern::deny("/etc/ssh/*_key")
        ));
    }

    #[test]
    fn globs_that_could_reach_a_denied_path_intersect() {
        assert!(intersects(&g("/etc/*"), &Pattern::deny("/etc/shadow*")));
        assert!(intersects(
            &g("/etc/sha?ow"),
            &Pattern::deny("/etc/shadow*")
        ));
        assert!(intersects(
            &g("/etc/[r-t]hadow"),
            &Pattern::deny("/etc/shadow*")
        ));
        assert!(!intersects(
            &g("/etc/[!s]hadow"),
            &Pattern::deny("/etc/shadow*")
        ));
        assert!(intersects(
            &g("/home/*/.ssh/*"),
            &Pattern::deny("**/.ssh/**")
        ));
        assert!(intersects(
            &g("/etc/ssh/*"),
            &Pattern::deny("/etc/ssh/*_key")
        ));
        assert!(!intersects(
            &g("/var/log/Xorg.*.log"),
            &Pattern::deny("**/.ssh/**")
        ));
        assert!(!intersects(
            &g("/var/log/*.log"),
            &Pattern::deny("/etc/shadow*")
        ));
    }

    #[test]
    fn wildcards_do_not_match_hidden_names() {
        // `*` never matches `.ssh`, as in Python's glob.
        assert!(!intersects(&g("/home/*/*"), &Pattern::deny("**/.ssh/**")));
        assert!(!intersects(
            &g("/var/log/lightdm/*"),
            &Pattern::deny("**/.netrc")
        ));
        assert!(!intersects(
            &g("/var/log/*.log"),
            &Pattern::deny("**/.*_history")
        ));
        assert!(intersects(&g("/home/*/.*"), &Pattern::deny("**/.netrc")));
    }

    #[test]
    fn unsupported_globs_are_errors() {
        assert_eq!(Pattern::glob("/var/**/x").err(), Some(GlobError::Globstar));
        assert_eq!(Pattern::glob("/var/{a,b}").err(), Some(GlobError::Braces));
        assert_eq!(
            Pattern::glob("/var/[ab").err(),
            Some(GlobError::UnclosedClass)
        );
        assert_eq!(
            Pattern::glob("/var/[a/]").err(),
            Some(GlobError::SlashInClass)
        );
        assert!(Pattern::glob("/var/[]]").unwrap().has_wildcard());
        assert!(!Pattern::glob("/var/log").unwrap().has_wildcard());
    }

    /// The automaton agrees with a regex translation of the deny pattern on
    /// literal paths (where the hidden-name rule plays no part).
    fn deny_regex(pattern: &str) -> regex::Regex {
        let mut re = String::from("^");
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '*' {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    re.push_str(".*");
                } else {
                    re.push_str("[^/]*");
                }
            } else {
                re.push_str(&regex::escape(&c.to_string()));
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn intersection_with_a_literal_path_is_plain_matching(
            path in "(/(\\.ssh|etc|shadow|ssh_host_rsa_key|root|a|\\.|\\.\\.|x_key|keyrings|\\.local|share|proc|1|environ)){1,6}",
            entry in 0..crate::hook::denylist::DENY_LIST.len(),
        ) {
            for p in crate::hook::denylist::DENY_LIST[entry].patterns {
                let expected = deny_regex(p).is_match(&path);
                proptest::prop_assert_eq!(
                    intersects(&Pattern::literal(&path), &Pattern::deny(p)),
                    expected,
                    "{} vs {}", path, p
                );
            }
        }
    }
}
