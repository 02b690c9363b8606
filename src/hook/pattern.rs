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
    Backslash,
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
            GlobError::Backslash => {
                "`\\` is not allowed in a glob: apportd's matcher reads it as an escape, the linter would not"
            }
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
                // apportd's fnmatch treats `\x` as `x` (`/etc/\s[h]adow`
                // matches /etc/shadow); Python's glob has no escapes. Refuse
                // it rather than let the two readings differ.
                '\\' => return Err(GlobError::Backslash),
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
}

/// Largest product automaton searched; beyond it the answer is "yes" (the
/// safe side for a deny-list). Capped paths against deny patterns stay well
/// below this.
const MAX_STATES: usize = 16 * 1024 * 1024;

/// Whether some path matches both patterns.
///
/// A depth-first search of the product of the two patterns' automata, with a
/// bitset of visited states. From a state, a literal on either side admits
/// one character; when both sides are wildcards, the only characters that
/// can lead to different states are `/`, `.` (hidden names), the boundaries
/// of the classes at hand and one character no class names, so only those
/// are tried. Work is linear in the product of the pattern lengths.
pub(crate) fn intersects(a: &Pattern, b: &Pattern) -> bool {
    let (la, lb) = (a.toks.len(), b.toks.len());
    let wb = lb.saturating_add(1);
    let Some(states) = la
        .checked_add(1)
        .and_then(|wa| wa.checked_mul(wb))
        .and_then(|n| n.checked_mul(2))
    else {
        return true;
    };
    if states > MAX_STATES {
        return true;
    }
    let mut seen = vec![0u64; states.div_ceil(64)];
    let mut chars: Vec<char> = Vec::new();
    let mut queue = vec![(0usize, 0usize, false)];
    while let Some((i, j, s)) = queue.pop() {
        let index = i
            .saturating_mul(wb)
            .saturating_add(j)
            .saturating_mul(2)
            .saturating_add(usize::from(s));
        let Some(word) = seen.get_mut(index / 64) else {
            continue;
        };
        let bit = 1u64 << (index % 64);
        if *word & bit != 0 {
            continue;
        }
        *word |= bit;
        if i == la && j == lb {
            return true;
        }
        if a.can_skip(i) {
            queue.push((i.saturating_add(1), j, s));
        }
        if b.can_skip(j) {
            queue.push((i, j.saturating_add(1), s));
        }
        let (Some(ta), Some(tb)) = (a.toks.get(i), b.toks.get(j)) else {
            continue;
        };
        chars.clear();
        match (ta, tb) {
            (Tok::Lit(c), _) | (_, Tok::Lit(c)) => chars.push(*c),
            _ => local_alphabet(ta, tb, &mut chars),
        }
        for &c in &chars {
            if let (Some(sa), Some(sb)) = (a.step(i, c, s), b.step(j, c, s)) {
                let ni = if sa { i } else { i.saturating_add(1) };
                let nj = if sb { j } else { j.saturating_add(1) };
                queue.push((ni, nj, c == '/'));
            }
        }
    }
    false
}

/// The characters that can make a difference when two wildcard tokens
/// consume one character together.
fn local_alphabet(a: &Tok, b: &Tok, out: &mut Vec<char>) {
    out.push('/');
    out.push('.');
    for tok in [a, b] {
        if let Tok::Class { ranges, .. } = tok {
            for (lo, hi) in ranges {
                for c in [*lo, *hi] {
                    out.push(c);
                    let n = u32::from(c);
                    for m in [n.checked_sub(1), n.checked_add(1)].into_iter().flatten() {
                        if let Some(m) = char::from_u32(m) {
                            out.push(m);
                        }
                    }
                }
            }
        }
    }
    if let Some(fresh) = ('\u{E000}'..='\u{F8FF}').find(|c| !out.contains(c)) {
        out.push(fresh);
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )]
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
        assert_eq!(
            Pattern::glob("/etc/\\s[h]adow").err(),
            Some(GlobError::Backslash)
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

    static DENY_REGEXES: std::sync::LazyLock<Vec<regex::Regex>> = std::sync::LazyLock::new(|| {
        crate::hook::denylist::compiled_patterns()
            .iter()
            .map(|(_, p, _)| deny_regex(p))
            .collect()
    });

    /// Python-glob matching of a literal path, by regex plus the hidden-name
    /// rule (checked component by component, as wildcards never span `/`).
    fn glob_matches(glob: &str, path: &str) -> bool {
        let mut re = String::from("^");
        for c in glob.chars() {
            match c {
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        if !regex::Regex::new(&re).unwrap().is_match(path) {
            return false;
        }
        glob.split('/')
            .zip(path.split('/'))
            .all(|(g, p)| !p.starts_with('.') || g.starts_with('.'))
    }

    proptest::proptest! {
        /// The security-relevant direction: whenever one real path matches
        /// both a glob and a deny pattern, the glob is found to intersect.
        #[test]
        fn a_glob_matching_a_denied_path_always_intersects(
            path in "(/(\\.ssh|etc|shadow|ssh_host_rsa_key|root|a|\\.a|x_key|keyrings|\\.local|share|proc|1|environ)){1,6}",
            stars in proptest::collection::vec((0usize..64, proptest::bool::ANY), 0..4),
        ) {
            let mut chars: Vec<char> = path.chars().collect();
            for (at, star) in stars {
                let at = at % chars.len();
                if chars[at] != '/' {
                    chars[at] = if star { '*' } else { '?' };
                }
            }
            let glob: String = chars.into_iter().collect();
            // Two neighbouring stars make an (unsupported) `**`.
            let compiled = Pattern::glob(&glob);
            proptest::prop_assume!(compiled.is_ok());
            let compiled = compiled.unwrap();
            let matches = glob_matches(&glob, &path);
            for ((_, p, deny), re) in crate::hook::denylist::compiled_patterns().iter().zip(DENY_REGEXES.iter()) {
                if matches && re.is_match(&path) {
                    proptest::prop_assert!(intersects(&compiled, deny), "{} vs {} (path {})", glob, p, path);
                }
            }
        }
    }
}
