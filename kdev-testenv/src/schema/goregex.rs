//! Go's `regexp` (RE2) syntax on the `regex` crate: kube-apiserver compiles a schema's `pattern`
//! with Go, whose syntax differs from the crate's in a few places a CRD can meet.
//!
//! - `\d`, `\w`, `\s` and `\b` are ASCII in Go, Unicode in the crate: they are rewritten to their
//!   ASCII forms, so `^\d+$` refuses Arabic-Indic digits as kube-apiserver does.
//! - A `{` that does not start a repetition (`a{}`, `x{a`) is a literal in Go, an error in the
//!   crate: it is escaped, as is a `}` that closes none.
//! - Inside a bracket class, `[`, `&` and `~` are literals in Go but nest or combine classes in
//!   the crate: they are escaped.
//!
//! The crate's size limit is raised, so that repetitions of classes Go accepts compile too.

use regex::{Regex, RegexBuilder};

/// The compiled-program size allowed: ample for `[0-9A-Za-z_]{1,1000}`.
const SIZE_LIMIT: usize = 256 << 20;

/// Compiles a Go regular expression.
///
/// # Errors
/// The crate's error for a pattern that is not a regular expression in either syntax.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&translate(pattern)).size_limit(SIZE_LIMIT).build()
}

/// `pattern` in the crate's syntax.
fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut class = false;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    out.push('\\');
                    break;
                };
                match (class, next) {
                    (false, 'd') => out.push_str("[0-9]"),
                    (false, 'D') => out.push_str("[^0-9]"),
                    (false, 'w') => out.push_str("[0-9A-Za-z_]"),
                    (false, 'W') => out.push_str("[^0-9A-Za-z_]"),
                    (false, 's') => out.push_str(r"[\t\n\f\r ]"),
                    (false, 'S') => out.push_str(r"[^\t\n\f\r ]"),
                    (false, 'b') => out.push_str(r"(?-u:\b)"),
                    (false, 'B') => out.push_str(r"(?-u:\B)"),
                    (true, 'd') => out.push_str("0-9"),
                    (true, 'w') => out.push_str("0-9A-Za-z_"),
                    (true, 's') => out.push_str(r"\t\n\f\r "),
                    (_, other) => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                i += 2;
            }
            '[' if !class => {
                class = true;
                out.push('[');
                i += 1;
                // `^` and a leading `]` belong to the class's start.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                // A POSIX class, `[:alpha:]`, copied whole.
                let end = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == ':' && chars[j + 1] == ']');
                match end {
                    Some(end) => {
                        out.extend(&chars[i..end + 2]);
                        i = end + 2;
                    }
                    None => {
                        out.push_str(r"\[");
                        i += 1;
                    }
                }
            }
            '[' | '&' | '~' if class => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            ']' if class => {
                class = false;
                out.push(']');
                i += 1;
            }
            '{' if !class => match repeat_len(&chars[i..]) {
                Some(len) => {
                    out.extend(&chars[i..i + len]);
                    i += len;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '}' if !class => {
                out.push_str(r"\}");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The length of a repetition `{n}`, `{n,}` or `{n,m}` at the start of `chars`, if there is one.
fn repeat_len(chars: &[char]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (chars.get(i) == Some(&'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = compile(r"^\d+$").unwrap();
        assert!(digits.is_match("42"));
        assert!(!digits.is_match("١٢"));
        assert!(!compile(r"^\w+$").unwrap().is_match("é"));
        assert!(compile(r"^[\w.-]+$").unwrap().is_match("a.b-c_1"));
        assert!(!compile(r"^[\w]+$").unwrap().is_match("é"));
        assert!(compile(r"^\s$").unwrap().is_match("\t"));
        assert!(!compile(r"^\s$").unwrap().is_match("\u{a0}"));
    }

    #[test]
    fn braces_that_repeat_nothing_are_literals_as_in_go() {
        assert!(compile("^a{}$").unwrap().is_match("a{}"));
        assert!(compile("^x{a$").unwrap().is_match("x{a"));
        assert!(compile("^a}$").unwrap().is_match("a}"));
        let repeat = compile("^a{2,3}$").unwrap();
        assert!(repeat.is_match("aaa") && !repeat.is_match("a"));
        assert!(compile("^a{2,}$").unwrap().is_match("aaaaa"));
    }

    #[test]
    fn class_punctuation_is_literal_as_in_go() {
        assert!(compile("^[a[]+$").unwrap().is_match("a[a"));
        assert!(compile("^[a&&b]+$").unwrap().is_match("a&b"));
        assert!(compile("^[]a]+$").unwrap().is_match("]a"));
        assert!(compile("^[^]a]+$").unwrap().is_match("bc"));
        assert!(compile("^[[:alpha:]]+$").unwrap().is_match("abc"));
    }

    #[test]
    fn long_class_repetitions_compile_and_bad_patterns_do_not() {
        assert!(compile(r"^\w{1,255}$").unwrap().is_match("abc"));
        assert!(compile("(").is_err());
        assert!(compile("+").is_err());
    }
}
