//! Go's `path.Match`, as Docker uses it: `.dockerignore` and COPY's
//! sources (a segment at a time) and `images --filter reference=`.

/// Go's `filepath.Match` for one path segment: `*`, `?`, `[...]`, `\`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_chars(&p, &n)
}

fn glob_chars(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| glob_chars(&p[1..], &n[skip..])),
        Some('?') => !n.is_empty() && glob_chars(&p[1..], &n[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return false;
            };
            let Some(&c) = n.first() else { return false };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('^' | '!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_chars(&p[end + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_chars(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && glob_chars(&p[1..], &n[1..]),
    }
}

/// Go's `path.Match` on a whole `/`-separated path: segment by segment
/// (`*` does not cross a `/`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, n)| matches(p, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_gos_path_match() {
        assert!(matches("[a-c]?x", "bzx"));
        assert!(!matches("[!a-c]?x", "bzx"));
        assert!(matches("*.log", "a.log"));
        assert!(matches("a\\*", "a*"));
        assert!(!matches("a\\*", "ab"));
        assert!(path_matches("hull.test/*", "hull.test/busybox"));
        assert!(!path_matches("*", "hull.test/busybox"));
        assert!(path_matches("*/*:1*", "a/b:12"));
    }
}
